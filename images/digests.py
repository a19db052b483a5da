"""Print a Helm values file that pins the images of the last `make push` by digest.

Why: a tag can be moved, a digest cannot, so a release installs the chart with the exact bytes it tested. The
chart already prefers ``digest`` over ``tag`` (charts/w4s/templates/_helpers.tpl); this turns the metadata
files ``docker buildx build --push --metadata-file`` wrote (build/images/NAME.json) into the values that set it:

    make push && make digests > release-values.yaml
    helm install w4s charts/w4s -n w4s-system -f release-values.yaml

Which values key belongs to which image is read from charts/w4s/values.yaml itself (the key whose default
repository ends in /NAME), so the mapping lives in one place.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
VALUES = ROOT / "charts" / "w4s" / "values.yaml"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def value_paths(values: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Image name (the last segment of its repository) -> where its repository/tag/digest live in the values."""
    paths: dict[str, tuple[str, ...]] = {values["image"]["repository"].rsplit("/", 1)[-1]: ("image",)}
    for key, entry in values["images"].items():
        if isinstance(entry, dict) and "repository" in entry:
            paths[entry["repository"].rsplit("/", 1)[-1]] = ("images", key)
    return paths


def read_digest(path: Path) -> str:
    """The pushed manifest's (or, for several platforms, the index's) digest from a buildx metadata file."""
    digest = json.loads(path.read_text()).get("containerimage.digest", "")
    if not _DIGEST.fullmatch(digest):
        raise SystemExit(f"{path}: no containerimage.digest (sha256:...) in it; was the image pushed?")
    return digest


def release_values(registry: str, metadata_dir: Path, values: dict[str, Any]) -> dict[str, Any]:
    """Values that set repository and digest of every image; fails naming the images that were not pushed."""
    paths = value_paths(values)
    missing = [name for name in paths if not (metadata_dir / f"{name}.json").is_file()]
    if missing:
        raise SystemExit(f"no push metadata for {', '.join(sorted(missing))} in {metadata_dir}: run `make push`")
    out: dict[str, Any] = {}
    for name, path in paths.items():
        node = out
        for key in path:
            node = node.setdefault(key, {})
        node.update(repository=f"{registry.rstrip('/')}/{name}", digest=read_digest(metadata_dir / f"{name}.json"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", required=True, help="the REGISTRY the images were pushed to")
    parser.add_argument("--metadata-dir", type=Path, default=ROOT / "build" / "images")
    args = parser.parse_args(argv)
    values = yaml.safe_load(VALUES.read_text())
    pinned = release_values(args.registry, args.metadata_dir, values)
    sys.stdout.write("# Helm values pinning the images of the last `make push` by digest (images/digests.py).\n")
    sys.stdout.write(yaml.safe_dump(pinned, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
