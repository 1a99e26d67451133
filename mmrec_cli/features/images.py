"""Image paths that stay inside the image root, and guarded decoding (missing, corrupt, unsupported, too large).

Every image that cannot be used gets one of the REASONS; callers count them and mask the image, never
encode a zero picture.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REASONS = {
    "outside": "outside the image root (pass --allow-outside-root to permit)",
    "missing": "missing",
    "unsupported": "not an image or an unsupported format",
    "corrupt": "corrupt or truncated",
    "too_large": "too large (over --max-pixels)",
}
DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own decompression-bomb limit


def resolve(root: Path, given: str, allow_outside: bool) -> tuple[Path | None, str | None]:
    """(file, None) for a usable path relative to `root`, else (None, reason). Symlinks are followed."""
    p = Path(given).expanduser() if allow_outside else Path(given)
    if not allow_outside and (p.is_absolute() or given.startswith("~")):
        return None, "outside"
    full = p if p.is_absolute() else root / p
    if not allow_outside:
        try:
            full.resolve().relative_to(root.resolve())
        except ValueError:
            return None, "outside"
    if not full.is_file():
        return None, "missing"
    return full, None


def decode(path: Path, max_pixels: int):
    """An RGB PIL image, or the reason it cannot be used. The pixel count is checked before decoding."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if img.width * img.height > max_pixels:
                return "too_large"
            img.load()
            return img.convert("RGB")
    except Image.DecompressionBombError:
        return "too_large"
    except UnidentifiedImageError:
        return "unsupported"
    except FileNotFoundError:
        return "missing"
    except Exception:  # PIL raises OSError, SyntaxError, ValueError, EOFError... for broken files
        return "corrupt"


@dataclass
class ImageLoader:
    """Decodes and preprocesses a batch of images on a thread pool (PIL and torchvision release the GIL)."""

    transform: object
    max_pixels: int = DEFAULT_MAX_PIXELS
    workers: int = 4
    _pool: ThreadPoolExecutor | None = field(default=None, repr=False)

    def __post_init__(self):
        import warnings

        from PIL import Image

        # our own pixel check replaces PIL's warning; an explicit larger limit lifts PIL's error as well
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
        if self.max_pixels > (Image.MAX_IMAGE_PIXELS or 0):
            Image.MAX_IMAGE_PIXELS = self.max_pixels
        self._pool = ThreadPoolExecutor(max_workers=max(1, self.workers), thread_name_prefix="mmrec-decode")

    def _one(self, path: Path):
        img = decode(path, self.max_pixels)
        return img if isinstance(img, str) else self.transform(img)

    def __call__(self, paths: list[Path]):
        """(stacked pixels of the usable images or None, usable flags, [(row, reason)])."""
        import torch

        results = list(self._pool.map(self._one, paths))
        ok = np.array([not isinstance(r, str) for r in results], dtype=bool)
        errors = [(i, r) for i, r in enumerate(results) if isinstance(r, str)]
        good = [r for r in results if not isinstance(r, str)]
        return (torch.stack(good) if good else None), ok, errors

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


@dataclass
class ClipImages:
    """The image tower of a CLIP model as a batch-runner encoder; unusable images come back masked."""

    clip: object
    loader: ImageLoader
    normalize: bool
    info: dict

    @property
    def dim(self) -> int:
        return self.clip.dim

    def prepare(self, paths: list[Path]) -> tuple[list[Path], None]:
        return paths, None  # all images are resized to one size: no length to sort by

    def load(self, paths: list[Path]):
        return self.loader(paths)

    def encode(self, loaded) -> tuple[np.ndarray, np.ndarray, list]:
        import torch

        pixels, ok, errors = loaded
        out = np.zeros((len(ok), self.dim), dtype=np.float32)
        if pixels is not None:
            with torch.inference_mode():
                feats = self.clip.model.encode_image(pixels.to(self.clip.device, self.clip.dtype)).float()  # normalised in float32
                if self.normalize:
                    feats = torch.nn.functional.normalize(feats, dim=-1)
            out[ok] = feats.cpu().numpy()
        return out, ok, errors


def image_encoder(clip, normalize: bool, max_pixels: int, workers: int) -> ClipImages:
    size = clip.model.visual.preprocess_cfg.get("size")
    info = dict(clip.info, tower="image", normalize=normalize, image_size=size, max_pixels=max_pixels)
    return ClipImages(clip, ImageLoader(clip.preprocess, max_pixels, workers), normalize, info)
