"""The pixel kernels as native functions, loaded from disk in milliseconds.

Numba compiles the kernels of `kernels` as C functions. Importing Numba and loading its own
cache takes 0.7-1 s per process, a hundred times what pooling a photo takes. So the machine
code of each compiled kernel is also written to a cache folder; later processes load it with
llvmlite alone (which Numba depends on; tens of milliseconds, no Numba import) and call it
through ctypes, which releases the GIL, so several threads run a kernel at once.

The cache is keyed on everything the code depends on: the kernels' source, the Numba and
llvmlite versions and the CPU (name and features). A copy that cannot be used (another layout
of Numba's internals, a symbol this process lacks, an unreadable folder) is skipped, and Numba
compiles the kernel in the process as it would without the cache. ``SOFTPOOL_CACHE_DIR`` moves
the folder (default ``$XDG_CACHE_HOME/softpool``, else ``~/.cache/softpool``).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

# Each kernel's arguments: "pixels", "windows", "table" and "scratch" are pointers (to samples,
# int64 window bounds, float64 tables, and working memory of the caller's that each call of
# a kernel has to itself), "int" an int64, "rate" a float32.
_GEOMETRY = ("pixels", "int", "int", "int", "int") + ("windows", "windows", "int") * 3
_WHOLE_WINDOWS = ("pixels", "int", "int", "int") + ("rate",) * 4 + ("pixels",) + ("int",) * 5 + ("scratch", "int", "int")
ARGUMENTS = {
    "small_windows": _WHOLE_WINDOWS,
    "separable": _WHOLE_WINDOWS,
    "general_soft": _GEOMETRY + ("table", "table", "int", "pixels", "scratch", "int", "int"),
    "max_relative_soft": _GEOMETRY + ("table", "int", "pixels", "scratch", "int", "int"),
    "general_max": _GEOMETRY + ("int", "pixels", "scratch", "int", "int"),
}
# Symbols that Numba's C wrappers reference only on error paths these kernels never take
# (reporting a Python exception, freeing a Numba array): abort() stands in where Numba is not loaded.
_ERROR_PATH_SYMBOLS = ("NRT_MemInfo_call_dtor", "numba_gil_ensure", "numba_gil_release")
_KERNELS_SOURCE = Path(__file__).with_name("kernels.py")
_CACHE_LAYOUT = 2  # 2: files that an earlier version wrote empty are not read
_lock = threading.Lock()
_keep_alive: list = []  # engines and compilations: their machine code lives as long as they do


def cache_folder() -> Path:
    configured = os.environ.get("SOFTPOOL_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "softpool"


@functools.lru_cache(maxsize=None)
def kernel(name: str, sample_type: str, constants: tuple = ()) -> Callable:
    """Kernel ``name`` for pixels of ``sample_type`` ("uint8" or "uint16"), compiled for
    ``constants`` (the arguments of its factory in `kernels`, for the whole-window kernels),
    as a ctypes function taking the arguments of ``ARGUMENTS[name]``."""
    label = "_".join([name, sample_type, *("x".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in constants)])
    with _lock:
        # Where Numba is already loaded (a process that also runs the library's CPU engine),
        # it compiles and caches the kernel itself: a second LLVM engine beside Numba's has
        # crashed while loading machine code.
        if "numba" not in sys.modules:
            try:
                return _load(name, label)
            except Exception:  # noqa: BLE001 - no usable copy on disk: compile one, and save it
                return _compile(name, sample_type, constants, label, need_machine_code=True)
        return _compile(name, sample_type, constants, label)


@functools.lru_cache(maxsize=None)
def _llvm():
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm, llvm.Target.from_default_triple().create_target_machine()


@functools.lru_cache(maxsize=None)
def _folder() -> Path:
    import importlib.util

    import llvmlite
    import llvmlite.binding as llvm

    # Numba's version file, read rather than imported (importing Numba is what this avoids).
    numba_spec = importlib.util.find_spec("numba")
    numba_version = Path(numba_spec.origin).with_name("_version.py").read_text(encoding="utf-8")
    parts = [
        str(_CACHE_LAYOUT),
        _KERNELS_SOURCE.read_text(encoding="utf-8"),
        numba_version,
        llvmlite.__version__,
        llvm.get_host_cpu_name(),
        llvm.get_host_cpu_features().flatten(),
    ]
    return cache_folder() / hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _load(name: str, label: str) -> Callable:
    folder = _folder()
    record = json.loads((folder / f"{label}.json").read_text(encoding="utf-8"))
    llvm, target_machine = _llvm()
    # One execution engine per object file: two files may define the same helper symbols.
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), target_machine)
    _keep_alive.append(engine)  # the machine code lives as long as its engine (even a failed one's)
    for symbol in record["undefined"]:
        if llvm.address_of_symbol(symbol) is None:
            if symbol not in _ERROR_PATH_SYMBOLS:
                raise LookupError(f"{symbol} is not defined in this process")
            llvm.add_symbol(symbol, ctypes.cast(ctypes.CDLL(None).abort, ctypes.c_void_p).value)
    engine.add_object_file(llvm.ObjectFileRef.from_data((folder / f"{label}.o").read_bytes()))
    engine.finalize_object()
    address = engine.get_function_address(record["symbol"])
    if not address:
        raise LookupError(f"{record['symbol']} is not in {label}.o")
    return _signature(name)(address)


def _compile(name: str, sample_type: str, constants: tuple, label: str, need_machine_code: bool = False) -> Callable:
    """Compile the kernel with Numba, and save its machine code for processes without Numba.

    Args:
        need_machine_code: Compile from source even where Numba's own cache has the kernel:
            a kernel loaded from that cache comes without the code that `_save` writes.
    """
    import numba
    from numba import types

    from . import kernels

    kinds = {
        "pixels": types.CPointer(getattr(types, sample_type)),
        "windows": types.CPointer(types.int64),
        "table": types.CPointer(types.float64),
        "scratch": types.CPointer(types.float32 if name in kernels.FACTORIES else types.float64),
        "int": types.int64,
        "rate": types.float32,
    }
    function = kernels.FACTORIES[name](*constants) if name in kernels.FACTORIES else kernels.FUNCTIONS[name]
    signature = types.void(*(kinds[kind] for kind in ARGUMENTS[name]))
    # cache=True: Numba's own cache, for processes that load Numba anyway.
    cache = name not in kernels.FACTORIES and not need_machine_code
    compiled = numba.cfunc(signature, nopython=True, error_model="numpy", cache=cache)(function)
    _keep_alive.append(compiled)
    try:
        if _has_machine_code(compiled):  # not when it came from Numba's cache
            _save(label, compiled)
    except Exception:  # noqa: BLE001 - the cache only saves time: run without it
        pass
    return _signature(name)(compiled.address)


def _has_machine_code(compiled) -> bool:
    """Whether Numba compiled ``compiled`` here (its module defines the kernel), rather than
    loading it from its own cache (then the module is an empty shell)."""
    function = compiled._library._final_module.get_function(compiled.native_name)
    return not function.is_declaration


def _save(label: str, compiled) -> None:
    """Write the compiled kernel's machine code and what it needs from the process.

    Reads Numba's compiled library (private attributes: another Numba may name them
    otherwise, and then nothing is cached).
    """
    library = compiled._library
    module = library._final_module
    undefined = sorted(
        {f.name for f in module.functions if f.is_declaration and not f.name.startswith("llvm.")}
        | {g.name for g in module.global_variables if g.is_declaration}
    )
    machine_code = library.codegen._tm.emit_object(module)
    record = json.dumps({"symbol": compiled.native_name, "undefined": undefined}).encode()
    folder = _folder()
    folder.mkdir(parents=True, exist_ok=True)
    # The record last: a process that finds it finds the object file complete.
    for path, data in ((folder / f"{label}.o", machine_code), (folder / f"{label}.json", record)):
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.")
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)


@functools.lru_cache(maxsize=None)
def _signature(name: str):
    kinds = {"pixels": ctypes.c_void_p, "windows": ctypes.c_void_p, "table": ctypes.c_void_p, "scratch": ctypes.c_void_p}
    kinds.update(int=ctypes.c_int64, rate=ctypes.c_float)
    return ctypes.CFUNCTYPE(None, *(kinds[kind] for kind in ARGUMENTS[name]))
