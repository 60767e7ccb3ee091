"""Clips for the CLI tests: generated inputs, outputs decoded with Pillow or PyAV (not the
command's reader), and the library's expected frames."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from softpool import soft_pool3d

from helpers.images import MEAN_RGB, STD_RGB


def frames_of(count: int, height: int, width: int, seed: int = 0, levels: int = 4) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of few colours (exact in a GIF palette), each frame different."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, size=(levels, 3), dtype=np.uint8)
    frames = palette[rng.integers(0, levels, size=(count, height, width))]
    frames[:, 0, 0] = np.arange(count)[:, None] * 7  # no two consecutive frames alike
    return frames


def write_gif(path: Path, frames: np.ndarray, durations_ms: list[int], loop: int | None = 0) -> Path:
    images = [Image.fromarray(frame).quantize(colors=16, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE) for frame in frames]
    extra = {} if loop is None else {"loop": loop}
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations_ms, optimize=False, **extra)
    return path


def read_gif(path: Path) -> tuple[np.ndarray, list[int], int | None]:
    """Frames (T, H, W, 3), durations in ms and loop count, as Pillow decodes them."""
    with Image.open(path) as image:
        frames, durations = [], []
        for index in range(image.n_frames):
            image.seek(index)
            frames.append(np.asarray(image.convert("RGB")))
            durations.append(image.info.get("duration", 0))
        return np.stack(frames), durations, image.info.get("loop")


def smooth_frames(count: int, height: int, width: int) -> np.ndarray:
    """(T, H, W, 3) smooth moving gradients: H.264 keeps them well."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = []
    for index in range(count):
        red = 128 + 100 * np.sin((x + 2 * index) / width * 2 * np.pi)
        green = 128 + 100 * np.cos((y + index) / height * 2 * np.pi)
        blue = 60 + 3 * index + 0 * x
        frames.append(np.stack([red, green, blue], axis=-1))
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def write_mp4(path: Path, frames: np.ndarray, fps: int, audio_seconds: float | None = None) -> Path:
    """H.264 clip at ``fps``; with ``audio_seconds``, a 440 Hz mono AAC track of that length."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "10"})
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        audio = None
        if audio_seconds is not None:
            audio = container.add_stream("aac", rate=16000)
            audio.layout = "mono"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
        if audio is not None:
            samples = np.sin(2 * np.pi * 440 * np.arange(round(16000 * audio_seconds)) / 16000).astype(np.float32)
            for start in range(0, len(samples), 1024):
                piece = av.AudioFrame.from_ndarray(0.3 * samples[None, start : start + 1024], format="fltp", layout="mono")
                piece.sample_rate, piece.pts = 16000, start
                container.mux(audio.encode(piece))
            container.mux(audio.encode(None))
    return path


def probe(path: Path) -> dict:
    """Frames, timing and streams of a clip, as PyAV reads it."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        decoded = [(frame.to_ndarray(format="rgb24"), frame.time) for frame in container.decode(video)]
    with av.open(str(path)) as container:
        audio = container.streams.audio[0] if container.streams.audio else None
        samples = sum(frame.samples for frame in container.decode(audio)) if audio is not None else 0
        return {
            "frames": np.stack([pixels for pixels, _ in decoded]),
            "times": [time for _, time in decoded],
            "duration": container.duration / av.time_base,
            "rate": container.streams.video[0].base_rate,
            "codec": container.streams.video[0].codec_context.name,
            "pix_fmt": container.streams.video[0].codec_context.pix_fmt,
            "audio_codec": audio.codec_context.name if audio is not None else None,
            "audio_duration": samples / audio.sample_rate if audio is not None else None,
        }


def library_pool(
    frames: np.ndarray, window: tuple[int, int, int], method: str = "soft", beta: float = 1.0, stride=None
) -> np.ndarray:
    """The documented result: frames cropped to whole spatial windows (max pooling's floor),
    pooled with ceil_mode in time (a last, shorter window pools the frames there are).
    ``stride`` (ST, SH, SW) defaults to the window."""
    _, height, width = window
    _, step_rows, step_columns = stride or window
    rows = (frames.shape[1] - height) // step_rows * step_rows + height
    columns = (frames.shape[2] - width) // step_columns * step_columns + width
    x = torch.from_numpy(frames[:, :rows, :columns].astype(np.float64)).permute(3, 0, 1, 2)[None]  # (1, 3, T, H, W)
    if method == "soft":
        mean = torch.from_numpy(MEAN_RGB).view(1, 3, 1, 1, 1)
        std = torch.from_numpy(STD_RGB).view(1, 3, 1, 1, 1)
        pooled = (soft_pool3d((x / 255 - mean) / std, window, stride, ceil_mode=True, beta=beta) * std + mean) * 255
    elif method == "max":
        pooled = F.max_pool3d(x, window, stride, ceil_mode=True)
    else:
        pooled = F.avg_pool3d(x, window, stride, ceil_mode=True, count_include_pad=False)
    return pooled.round().clamp(0, 255)[0].permute(1, 2, 3, 0).numpy().astype(np.uint8)  # (T', H', W', 3)


def assert_frames_equal(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal up to one level, where float32 and float64 round a value near .5 differently.

    Average pooling of 8 pixels lands exactly on .5 for one value in eight, so ties are
    common there: at least 90 % of the values must match exactly.
    """
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    difference = np.abs(actual.astype(int) - expected.astype(int))
    assert difference.max() <= 1, f"max difference {difference.max()} at {np.argwhere(difference > 1)[:5].tolist()}"
    assert (difference == 0).mean() > 0.9, f"only {(difference == 0).mean():.3f} of the values match exactly"


def psnr(actual: np.ndarray, expected: np.ndarray) -> float:
    error = np.mean((actual.astype(np.float64) - expected.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(error, 1e-12)))


def read_animation(path: Path) -> tuple[np.ndarray, list[int]]:
    """Frames (T, H, W, 3) and durations in ms of a GIF, APNG or animated WebP, as Pillow decodes them."""
    with Image.open(path) as image:
        frames, durations = [], []
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            frames.append(np.asarray(image.convert("RGB")))
            durations.append(image.info.get("duration", 0))
        return np.stack(frames), durations
