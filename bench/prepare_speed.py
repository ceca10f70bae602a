"""`emote prepare` speed on 12-megapixel photos (the target: <= 1 s after the first call).

    python -m bench.prepare_speed [--json OUT.json]

Makes three different 12 MP JPEGs (4000x3000 upscales of the bundled portrait, shifted so
their content hashes differ) and prepares each in one process, so only the first pays for
loading FaceMesh; then prepares the first again (a cache hit).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from contracts.paths import DEFAULT_PORTRAIT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    from engines.avatar import prepare_avatar
    from engines.rig import rig_for_avatar

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = Image.open(DEFAULT_PORTRAIT).convert("RGB")
        paths = []
        for i in range(3):
            canvas = Image.new("RGB", (3000, 4000), (40 + i, 60, 50))
            canvas.paste(base.resize((2250, 4000)), (300 + 50 * i, 0))
            path = work / f"photo{i}.jpg"
            canvas.save(path, quality=90)
            paths.append(path)
        timings = []
        for path in [*paths, paths[0]]:
            t0 = time.perf_counter()
            avatar = prepare_avatar(path, cache_dir=work / "cache")
            rig_for_avatar(avatar.avatar_id, avatar.image, avatar.landmarks, work / "cache")
            timings.append(round(time.perf_counter() - t0, 3))
    result = {
        "megapixels": 12,
        "first_s (FaceMesh load included)": timings[0],
        "next_s (other photos)": timings[1:3],
        "cache_hit_s": timings[3],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
