"""Find, or create on request, the Python environment that converts ONNX to TFLite.

The converter stack (onnx2torch, litert-torch, ai-edge-quantizer and what they pull in: jax, xdsl,
litert-converter, transformers; 0.8-1.3 GB beside torch) pins ``typing-extensions<4.13`` through
xdsl, which would downgrade typing-extensions, pydantic and anyio in the user's environment. So it
lives in its own environment and only ``convert_worker.py`` runs there, in a subprocess; the LiteRT
runtime (``ai-edge-litert``, no such pins) stays in the main environment.

Which interpreter converts, first match wins:

1. ``EDGEOPT_LITERT_PYTHON``: an interpreter the user points at;
2. this interpreter, when the converter packages are importable here (``pip install
   'edgeopt-edgetpu[convert]'`` into a dedicated environment);
3. the toolchain environment ``litert-<key>`` in ``EDGEOPT_TOOLCHAIN_DIR``, else in the ``toolchains``
   folder of edgeopt's cache folder (``edgeopt.plugin.cache_dir("toolchains")``), ``<key>`` being
   a hash of the requirement lines, the torch/numpy/onnx versions it reuses from here, this environment's
   site-packages path, the Python version and the platform, so a change of any of them builds a new one.

``add_onnx2tf()`` (``edgeopt edgetpu toolchain --create --with-onnx2tf``) adds the second conversion route,
onnx2tf with TensorFlow (``ONNX2TF``, about +2 GB), to a cached toolchain: TensorFlow lands there only, never in
the user's environment. Without it the converter tries the torch route alone.

``create_toolchain()`` builds (3) (``edgeopt edgetpu toolchain --create``): a plain venv whose
``.pth`` file appends this environment's site-packages *after* its own, so torch (and onnx, numpy)
come from here without a second multi-GB download, while the converter's own pins (typing-extensions)
take precedence inside the toolchain only. Nothing is downloaded at deploy time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

from edgeopt.plugin import TargetError, cache_dir

PYTHON_ENV = "EDGEOPT_LITERT_PYTHON"
DIR_ENV = "EDGEOPT_TOOLCHAIN_DIR"
CONVERTER_MODULES = ("onnx2torch", "litert_torch", "ai_edge_quantizer")
REQUIREMENTS = (
    "litert-torch>=0.10,<0.11",
    "ai-edge-quantizer>=0.10,<0.11",
    "ai-edge-litert>=2.3,<2.4",
)
"""What the toolchain installs beside onnx2torch (torch, onnx and numpy come from the main environment)."""
NO_DEPS = ("onnx2torch>=1.5.15",)
"""Installed without dependencies: onnx2torch's only extra one is torchvision, needed for two detection ops, and
PyPI's Linux torchvision is a CUDA build pinned to the newest torch (see ``convert_worker.py``)."""
ONNX2TF = (
    "tensorflow>=2.19,<2.22",
    "tf-keras>=2.19,<2.22",
    "onnx2tf>=1.28,<1.30",
    "onnx-graphsurgeon>=0.5",
    "sng4onnx>=1.0",
    "psutil>=5",
)
"""The onnx2tf route: onnx2tf declares no dependencies; these are what it imports (onnx and onnxruntime come from
the main environment). onnx2tf 2.x needs Python >= 3.12; 1.28-1.29 run on 3.11."""
ONNX2TF_MARKER = ".onnx2tf-complete"
SHARED = ("torch", "numpy", "onnx")
"""Pinned in the toolchain to the versions this environment has, so pip reuses them instead of upgrading."""
SETUP_HINT = (
    "create the converter environment once with `edgeopt edgetpu toolchain --create` (about 0.8 GB, 2 min), "
    f"or point {PYTHON_ENV} at a Python that has: pip install 'edgeopt-edgetpu[convert]'"
)


@dataclass(frozen=True)
class Toolchain:
    """The interpreter that runs ``convert_worker.py`` and where it came from."""

    python: Path
    source: str
    """``env`` (EDGEOPT_LITERT_PYTHON), ``this-environment`` or ``cache`` (a created toolchain)."""


def converter_importable() -> bool:
    """Whether this interpreter has every converter package."""
    return all(importlib.util.find_spec(m) is not None for m in CONVERTER_MODULES)


def _pins() -> list[str]:
    """``name==version`` of each ``SHARED`` distribution installed here (local labels such as ``+cpu`` dropped)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in SHARED:
        try:
            pins.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return pins


def _site_packages() -> list[str]:
    """This environment's site-packages folders: what the toolchain's ``.pth`` points at."""
    import site

    return [p for p in site.getsitepackages() if Path(p).is_dir()]


def toolchain_key() -> str:
    """Content key of the toolchain this environment would create."""
    text = "\n".join([*REQUIREMENTS, *NO_DEPS, *_pins(), *_site_packages(), sys.version.split()[0],
                      sysconfig.get_platform()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def toolchain_dir() -> Path:
    """Where the cached toolchain for this environment lives (whether or not it exists)."""
    root = os.environ.get(DIR_ENV, "").strip()
    base = Path(root).expanduser() if root else cache_dir("toolchains")
    return base / f"litert-{toolchain_key()}"


def _venv_python(root: Path) -> Path:
    return root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def find_toolchain() -> Toolchain | None:
    """The converter interpreter (see the module docstring for the order), or None."""
    chosen = os.environ.get(PYTHON_ENV)
    if chosen:
        return Toolchain(Path(chosen), "env")
    if converter_importable():
        return Toolchain(Path(sys.executable), "this-environment")
    root = toolchain_dir()
    python = _venv_python(root)
    if python.is_file() and (root / ".complete").is_file():
        return Toolchain(python, "cache")
    return None


def require_toolchain() -> Toolchain:
    """``find_toolchain()`` or ``TargetError`` saying how to get one."""
    found = find_toolchain()
    if found is None:
        raise TargetError("the ONNX → TFLite converter (litert-torch, onnx2torch, ai-edge-quantizer) is not set up",
                          hint=SETUP_HINT)
    if not found.python.is_file():
        raise TargetError(f"{PYTHON_ENV} points at {found.python}, which does not exist",
                          hint=f"unset {PYTHON_ENV} or point it at a Python interpreter")
    return found


def has_onnx2tf(toolchain: Toolchain) -> bool:
    """Whether ``toolchain`` is a cached one with the onnx2tf route added (other interpreters: the worker checks)."""
    return toolchain.source == "cache" and (toolchain.python.parent.parent / ONNX2TF_MARKER).is_file()


def _pip(python: Path, args: list[str], *, timeout_s: float, extra_pip_args: tuple[str, ...] = ()) -> None:
    command = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *extra_pip_args, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)  # noqa: S603
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise TargetError(f"installing the converter toolchain failed (exit {done.returncode}): {tail}",
                          hint="check access to PyPI, then run `edgeopt edgetpu toolchain --create` again")


def add_onnx2tf(toolchain: Toolchain, *, timeout_s: float = 1800.0, extra_pip_args: tuple[str, ...] = ()) -> float:
    """Install ``ONNX2TF`` into a cached toolchain (constrained to its torch/numpy/onnx pins); return the seconds
    it took (0 when already there). ``TargetError`` for a toolchain edgeopt did not create."""
    if toolchain.source != "cache":
        raise TargetError(f"the converter toolchain {toolchain.python} was not created by edgeopt ({toolchain.source})",
                          hint="install the onnx2tf route there yourself: pip install 'edgeopt-edgetpu[onnx2tf]'")
    root = toolchain.python.parent.parent
    if (root / ONNX2TF_MARKER).is_file():
        return 0.0
    started = time.perf_counter()
    try:
        _pip(toolchain.python, ["-c", str(root / "constraints.txt"), *ONNX2TF], timeout_s=timeout_s,
             extra_pip_args=extra_pip_args)
    except subprocess.TimeoutExpired as exc:
        raise TargetError(f"installing onnx2tf and TensorFlow took over {timeout_s:g} s; stopped",
                          hint="retry on a faster connection") from exc
    (root / ONNX2TF_MARKER).write_text("\n".join(ONNX2TF) + "\n")
    return time.perf_counter() - started


def create_toolchain(*, timeout_s: float = 1800.0, extra_pip_args: tuple[str, ...] = ()) -> tuple[Toolchain, float]:
    """Build the cached toolchain (venv + pip install ``REQUIREMENTS``); return it and the seconds it took.

    An existing complete one is returned as is (0 s). A failed build is removed, never left half-made.
    """
    import shutil
    import venv

    root = toolchain_dir()
    python = _venv_python(root)
    if python.is_file() and (root / ".complete").is_file():
        return Toolchain(python, "cache"), 0.0
    if root.exists():
        shutil.rmtree(root)
    started = time.perf_counter()
    root.parent.mkdir(parents=True, exist_ok=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    try:
        own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True, timeout=60).stdout.strip()
        here = _site_packages()
        # appended after the toolchain's own site-packages: its pins win inside the toolchain only
        (Path(own) / "edgeopt-main-env.pth").write_text("".join(f"{p}\n" for p in here))
        constraints = root / "constraints.txt"
        constraints.write_text("".join(f"{pin}\n" for pin in _pins()))
        _pip(python, ["-c", str(constraints), *REQUIREMENTS], timeout_s=timeout_s, extra_pip_args=extra_pip_args)
        _pip(python, ["--no-deps", *NO_DEPS], timeout_s=timeout_s, extra_pip_args=extra_pip_args)
        (root / ".complete").write_text("\n".join([*REQUIREMENTS, *NO_DEPS]) + "\n")
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise TargetError(f"installing the converter toolchain took over {timeout_s:g} s; stopped",
                          hint="retry on a faster connection") from exc
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return Toolchain(python, "cache"), time.perf_counter() - started
