"""The pixel kernels as native functions, loaded from disk in milliseconds.

Numba compiles the kernels of `kernels` as C functions. Importing Numba and loading its own
cache takes 0.7-1 s per process, a hundred times what pooling a photo takes. So the machine
code of each compiled kernel is also written to a cache folder, and later processes call it
through ctypes, which releases the GIL, so several threads run a kernel at once:

- where the system has a C compiler to link with (``cc``, or ``$CC``), as a shared library,
  which ctypes loads in a fraction of a millisecond, with neither Numba nor LLVM in the process;
- else as an object file, which llvmlite (a dependency of Numba) loads in tens of
  milliseconds, and about 60 MB, without importing Numba.

The cache is keyed on everything the code depends on: the kernels' source, the Numba and
llvmlite versions and the CPU (its name and features, from ``/proc/cpuinfo`` where there is
one, else from LLVM). A copy that cannot be used (another layout of Numba's internals, a
symbol this process lacks, an unreadable folder) is skipped, and Numba compiles the kernel in
the process as it would without the cache. ``SOFTPOOL_CACHE_DIR`` moves the folder (default
``$XDG_CACHE_HOME/softpool``, else ``~/.cache/softpool``).
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import platform
import sys
import threading
import zlib
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
_CACHE_LAYOUT = 3  # 2: files that an earlier version wrote empty are not read; 3: shared libraries
# Definitions for the shared library of the error-path symbols above: it must load on its own.
_STUBS = "declare void @abort()\n" + "".join(
    f"define void @{symbol}() noreturn {{\n  call void @abort()\n  unreachable\n}}\n" for symbol in _ERROR_PATH_SYMBOLS
)
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

    # The versions' files, read rather than imported (importing Numba is what this avoids).
    versions = []
    for package in ("numba", "llvmlite"):
        spec = importlib.util.find_spec(package)
        versions.append(Path(spec.origin).with_name("_version.py").read_text(encoding="utf-8"))
    parts = [str(_CACHE_LAYOUT), _KERNELS_SOURCE.read_text(encoding="utf-8"), *versions, *_cpu_identity()]
    key = "\n".join(parts).encode()
    # Two checksums and the length: a collision between the few keys one machine sees is out
    # of reach, and hashlib would load OpenSSL (4 ms of a photo's 0.1 s).
    return cache_folder() / f"{zlib.crc32(key):08x}{zlib.adler32(key):08x}{len(key):x}"


def _cpu_identity() -> tuple[str, ...]:
    """What the machine code depends on of the CPU: its model and instruction set extensions.

    From the first processor in ``/proc/cpuinfo`` where there is one (no LLVM to load), else
    LLVM's host CPU name and features.
    """
    try:
        lines = []
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if not line.strip():
                    break
                key = line.split(":", 1)[0].strip()
                if key in ("vendor_id", "cpu family", "model", "model name", "flags", "Features", "CPU implementer",
                           "CPU part", "CPU architecture", "isa", "cpu model"):  # fmt: skip
                    lines.append(line.strip())
        if lines:
            return ("cpuinfo", platform.machine(), *lines)
    except OSError:
        pass
    import llvmlite.binding as llvm

    return ("llvm", llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten())


def _load(name: str, label: str) -> Callable:
    folder = _folder()
    record = json.loads((folder / f"{label}.json").read_text(encoding="utf-8"))
    if record.get("shared"):
        try:
            library = ctypes.CDLL(str(folder / f"{label}.so"))
            _keep_alive.append(library)
            return _signature(name)(ctypes.cast(library[record["symbol"]], ctypes.c_void_p).value)
        except (OSError, AttributeError):
            pass  # not loadable here: the object file then
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
    folder = _folder()
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / f"{label}.o", machine_code)
    shared = _link_shared(module, folder, label)
    record = json.dumps({"symbol": compiled.native_name, "undefined": undefined, "shared": shared}).encode()
    _write(folder / f"{label}.json", record)  # last: a process that finds it finds the rest complete


def _write(path: Path, data: bytes) -> None:
    import tempfile

    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "wb") as stream:
        stream.write(data)
    os.replace(temporary, path)


def _link_shared(module, folder: Path, label: str) -> bool:
    """Link the kernel's module into ``label.so`` with the system's C compiler, if it has one.

    The module is compiled again as position-independent code (Numba's own is for its JIT),
    with definitions of the error-path symbols, so that the library loads in any Python
    process. Returns whether it was written; any failure leaves the object file alone.
    """
    import shlex
    import shutil
    import subprocess
    import tempfile

    command = shlex.split(os.environ.get("CC") or "cc")
    if not command or shutil.which(command[0]) is None:
        return False
    llvm, _ = _llvm()
    try:
        machine = llvm.Target.from_triple(module.triple).create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3,
            reloc="pic", codemodel="default",
        )  # fmt: skip
        stubs = llvm.parse_assembly(_STUBS)
        stubs.triple = module.triple
        with tempfile.TemporaryDirectory(dir=folder, prefix=".link-") as scratch:
            kernel_object, stubs_object, shared = (Path(scratch) / n for n in ("kernel.o", "stubs.o", "kernel.so"))
            kernel_object.write_bytes(machine.emit_object(module))
            stubs_object.write_bytes(machine.emit_object(stubs))
            linked = subprocess.run([*command, "-shared", "-o", str(shared), str(kernel_object), str(stubs_object)],
                                    capture_output=True, timeout=120)  # fmt: skip
            if linked.returncode != 0:
                return False
            os.replace(shared, folder / f"{label}.so")
        return True
    except (OSError, RuntimeError, subprocess.SubprocessError):
        return False


@functools.lru_cache(maxsize=None)
def _signature(name: str):
    kinds = {"pixels": ctypes.c_void_p, "windows": ctypes.c_void_p, "table": ctypes.c_void_p, "scratch": ctypes.c_void_p}
    kinds.update(int=ctypes.c_int64, rate=ctypes.c_float)
    return ctypes.CFUNCTYPE(None, *(kinds[kind] for kind in ARGUMENTS[name]))
