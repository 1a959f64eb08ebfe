"""Route ``onnx2tf``: ONNX → TensorFlow → fp32 ``.tflite`` with onnx2tf, the field's common ONNX → TFLite converter.

Run in the converter toolchain only, and only where TensorFlow and onnx2tf are installed there (``edgeopt edgetpu
toolchain --create --with-onnx2tf``); the user's environment never gets TensorFlow. Graph inputs of rank 3-5 keep
their ONNX (channels-first) layout (``keep_ncw_or_nchw_or_ncdhw_input_names``); outputs may come out
channels-last, which the worker's check finds and records as a permutation the runner applies. onnxsim is not
run (the graph arrives simplified), and onnx2tf converts a copy (it may write op names into its input file).
onnx2tf's SavedModel is converted by TensorFlow's own TFLite converter, which
writes the signature (input names kept) that onnx2tf 1.28's ``.tflite`` lacks. onnx2tf stops on errors with
``sys.exit``; that, like any exception, becomes ``RouteFailure`` naming the last ONNX node onnx2tf logged.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import tempfile
from pathlib import Path

if __package__:
    from .convert_common import RouteFailure
else:  # loaded by path in the converter toolchain (convert_worker.load_siblings)
    from convert_common import RouteFailure  # type: ignore[no-redef]

NAME = "onnx2tf"
CONVERTER = "onnx2tf"

_OP_NAME = re.compile(r"onnx_op_name:\s*(\S+)")
_OP_TYPE = re.compile(r"onnx_op_type:\s*(\S+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def available() -> str | None:
    """None when TensorFlow and onnx2tf import, else why not."""
    import importlib.util

    missing = [m for m in ("tensorflow", "onnx2tf", "onnx_graphsurgeon") if importlib.util.find_spec(m) is None]
    return f"not installed in the converter toolchain: {', '.join(missing)}" if missing else None


def build(model_path: str, out: Path, sample: tuple, notes: list[str]) -> None:
    """Write the fp32 ``.tflite`` of the ONNX model at ``model_path`` to ``out``; ``RouteFailure`` when onnx2tf
    fails. ``sample`` is unused (onnx2tf reads the static shapes from the graph)."""
    import onnx

    model = onnx.load(model_path, load_external_data=False)
    channels_first = [i.name for i in model.graph.input if 3 <= len(i.type.tensor_type.shape.dim) <= 5]
    folder = Path(tempfile.mkdtemp(prefix="onnx2tf-"))
    log = io.StringIO()
    try:
        import onnx2tf

        source = folder / "input" / Path(model_path).name  # onnx2tf may rewrite its input file (op names)
        source.parent.mkdir()
        shutil.copyfile(model_path, source)
        with contextlib.redirect_stdout(log):
            onnx2tf.convert(
                input_onnx_file_path=str(source), output_folder_path=str(folder), output_signaturedefs=True,
                not_use_onnxsim=True, verbosity="info", keep_ncw_or_nchw_or_ncdhw_input_names=channels_first or None,
            )
            import tensorflow as tf  # onnx2tf's own .tflite has no signature: convert its SavedModel once more

            out.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(folder)).convert())
    except (Exception, SystemExit) as exc:
        text = _ANSI.sub("", log.getvalue())
        names, kinds = _OP_NAME.findall(text), _OP_TYPE.findall(text)
        errors = [line.strip() for line in text.splitlines() if "ERROR" in line and line.strip()]
        message = f"{type(exc).__name__}: {str(exc).strip()}" if str(exc).strip() else (
            errors[0][:400] if errors else type(exc).__name__)
        raise RouteFailure("onnx2tf", message.splitlines()[0][:400], node=names[-1] if names else "",
                           op=kinds[-1] if kinds else "") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    notes.append(f"onnx2tf kept the channels-first layout of {', '.join(channels_first)}" if channels_first else
                 "onnx2tf converted the graph as is")
