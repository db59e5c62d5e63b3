"""The TkChat application icon: one committed source picture, every platform format derived from it.

``python build_scripts/icons.py --draw-source`` paints ``gui/assets/tkchat.png``
(1024x1024, two speech bubbles on a rounded blue tile) with Pillow.  It is run once by a person
and its output committed, so the picture only changes when someone means it to.

``derive_icons(out_dir)`` is what the build calls: it turns that one PNG into ``tkchat.ico``
(Windows, several sizes in one file), ``tkchat.icns`` (macOS) and ``tkchat-256.png`` (Linux
desktop files, and the client's window icon) under ``out_dir``.  Deriving at build time instead of
committing the three files keeps them from drifting apart from the source.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw

ASSETS = Path(__file__).resolve().parent.parent / "gui" / "assets"
SOURCE = ASSETS / "tkchat.png"
SOURCE_SIZE = 1024
ICO_SIZES = [(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)]
ICNS_SIZES = [16, 32, 64, 128, 256, 512, 1024]


def draw_source(path: Path = SOURCE) -> Path:
    """Paint the source picture.  Drawn at 4x and scaled down so the curves are antialiased."""
    scale = 4
    size = SOURCE_SIZE * scale
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)

    # Tile: a vertical gradient from sky blue to deep blue, clipped to a rounded square.
    top, bottom = (56, 151, 240), (24, 70, 170)
    gradient = Image.new("RGBA", (size, size))
    gdraw = ImageDraw.Draw(gradient)
    for y in range(size):
        t = y / (size - 1)
        colour = tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        gdraw.line([(0, y), (size, y)], fill=(*colour, 255))
    mask = Image.new("L", (size, size), 0)
    margin = 40 * scale
    ImageDraw.Draw(mask).rounded_rectangle(
        [margin, margin, size - margin, size - margin], radius=200 * scale, fill=255
    )
    img.paste(gradient, (0, 0), mask)

    def bubble(box: tuple[int, int, int, int], fill: tuple[int, int, int], tail_left: bool) -> None:
        x0, y0, x1, y1 = (v * scale for v in box)
        draw.rounded_rectangle([x0, y0, x1, y1], radius=90 * scale, fill=fill)
        if tail_left:
            tail = [(x0 + 90 * scale, y1 - 10), (x0 + 40 * scale, y1 + 110 * scale)]
            tail.append((x0 + 220 * scale, y1 - 10))
        else:
            tail = [(x1 - 90 * scale, y1 - 10), (x1 - 40 * scale, y1 + 110 * scale)]
            tail.append((x1 - 220 * scale, y1 - 10))
        draw.polygon(tail, fill=fill)

    # Back bubble (the other person), then the front one with three "typing" dots.
    bubble((380, 190, 880, 520), (255, 196, 61), tail_left=False)
    bubble((150, 400, 700, 760), (255, 255, 255), tail_left=True)
    for cx in (290, 425, 560):
        r = 42 * scale
        cy = 580 * scale
        draw.ellipse([cx * scale - r, cy - r, cx * scale + r, cy + r], fill=(24, 70, 170))

    path.parent.mkdir(parents=True, exist_ok=True)
    img.resize((SOURCE_SIZE, SOURCE_SIZE), Image.Resampling.LANCZOS).save(path, optimize=True)
    return path


def derive_icons(out_dir: Path, source: Path = SOURCE) -> dict[str, Path]:
    """Write the .ico, .icns and 256 px .png for the build; return them by extension."""
    if not source.is_file():
        raise FileNotFoundError(
            f"icon source {source} is missing; restore it from git, "
            "or paint a new one with: python build_scripts/icons.py --draw-source"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as opened:
        src = opened.convert("RGBA")
    made = {
        "ico": out_dir / "tkchat.ico",
        "icns": out_dir / "tkchat.icns",
        "png": out_dir / "tkchat-256.png",
    }
    src.save(made["ico"], format="ICO", sizes=ICO_SIZES)
    # Pillow writes every size it can from the source; append_images would only add variants.
    src.save(made["icns"], format="ICNS")
    src.resize((256, 256), Image.Resampling.LANCZOS).save(made["png"], optimize=True)
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--draw-source", action="store_true", help=f"repaint the committed {SOURCE.name}"
    )
    parser.add_argument(
        "--out", type=Path, help="derive .ico/.icns/.png into this folder (what the build does)"
    )
    args = parser.parse_args(argv)
    if not args.draw_source and args.out is None:
        parser.error("say what to do: --draw-source and/or --out DIR")
    if args.draw_source:
        print(f"painted {draw_source()}")
    if args.out is not None:
        for path in derive_icons(args.out).values():
            print(f"derived {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
