"""The errors edgeopt raises on purpose.

Each carries a stable ``code`` (documented in docs/errors.md), a message saying what is wrong, and a
``hint`` saying what to do next. The CLI prints ``error[CODE]: message`` and the hint on one line
each, never a traceback (unless ``EDGEOPT_DEBUG=1``), and exits with the class's ``exit_status`` (one per
error family, documented in docs/errors.md; ``exit_status_for_code`` maps a code to it).

``EdgeoptWarning`` is the category of every warning the SDK issues (``warnings.warn(..., EdgeoptWarning)``),
so ``warnings.filterwarnings("error", category=EdgeoptWarning)`` turns them into failures.
"""

from __future__ import annotations

INTERNAL_EXIT_STATUS = 70
"""Exit status of a bug (any exception that is not an ``EdgeoptError``): sysexits' EX_SOFTWARE."""

INTERRUPTED_EXIT_STATUS = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells report it."""


class EdgeoptWarning(UserWarning):
    """Category of the warnings edgeopt issues: synthetic calibration data, a slower quantized model shipped
    on request, a plugin hook that failed without stopping the run, ..."""


class EdgeoptError(Exception):
    """Base class: a problem the user can act on."""

    code = "E000"
    default_hint = ""
    exit_status = 1
    """The CLI's exit status for this error; subclasses inherit their family's."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return self.message


class CommandLineError(EdgeoptError):
    """The command line cannot be parsed: an unknown option, a missing argument, a value of the wrong type."""

    code = "E010"
    exit_status = 2
    default_hint = "run `edgeopt COMMAND --help` for the options"


class ModelError(EdgeoptError):
    """The model file or object cannot be read, checked or converted."""

    code = "E100"
    exit_status = 4
    default_hint = "check that the file is a complete, valid model (try `edgeopt inspect MODEL`)"


class UnsafeModelError(ModelError):
    """The model asks for something edgeopt refuses by default (pickle, paths outside its folder...)."""

    code = "E110"


class ResourceLimitError(ModelError):
    """The model declares more memory than the configured limit allows."""

    code = "E120"
    default_hint = "raise the limit with EDGEOPT_MAX_TENSOR_BYTES if you trust this model"


class UnsupportedModelError(ModelError):
    """The model uses an op or feature the target or converter cannot handle."""

    code = "E130"


class InputSpecError(EdgeoptError):
    """Input shapes, dtypes or names given by the user do not match the model."""

    code = "E200"
    exit_status = 5
    default_hint = "run `edgeopt inspect MODEL` to see the model's inputs"


class DataError(EdgeoptError):
    """Calibration or evaluation data cannot be read or does not fit the model."""

    code = "E210"
    exit_status = 5
    default_hint = "data is an .npz whose keys are the model's input names (plus optional 'labels')"


class TargetError(EdgeoptError):
    """Unknown target, or a target that cannot be used here."""

    code = "E300"
    exit_status = 6
    default_hint = "run `edgeopt targets` to list targets and why any are unavailable"


class TargetUnavailable(TargetError):
    """The target exists but cannot run on this machine (missing package, no device)."""

    code = "E310"
    exit_status = 7


class DeviceError(EdgeoptError):
    """Unknown or invalid device profile."""

    code = "E320"
    exit_status = 6
    default_hint = "run `edgeopt devices` to list device profiles"


class PluginError(EdgeoptError):
    """A plugin failed to load, register or run a hook."""

    code = "E400"
    exit_status = 8
    default_hint = "run `edgeopt plugins` to see each plugin's status; disable it with EDGEOPT_PLUGINS"


class CompileError(EdgeoptError):
    """A target failed to produce a working model."""

    code = "E500"
    exit_status = 9


class ConversionError(CompileError):
    """A model converter (ONNX → another format) could not convert the graph: which converter, which route,
    which stage, and the first node it failed on when known."""

    code = "E510"
    default_hint = "try another --target, or report the node to the converter's authors"

    def __init__(self, message: str, *, converter: str = "", route: str = "", node: str = "", op: str = "",
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.converter, self.route, self.node, self.op = converter, route, node, op


class AccuracyBudgetExceeded(EdgeoptError):
    """No candidate stays within the accuracy budget."""

    code = "E600"
    exit_status = 10
    default_hint = "raise --max-drop, give real --calib data, or choose --precision fp32"


class ArtifactError(EdgeoptError):
    """An artifact is missing, incomplete or fails its hash check."""

    code = "E700"
    exit_status = 11
    default_hint = "re-run `edgeopt deploy`; never edit files inside an artifact"


class OutputPathError(EdgeoptError):
    """The output location cannot be written."""

    code = "E710"
    exit_status = 11
    default_hint = "choose a writable --out directory with free space"


class RegistryError(EdgeoptError):
    """The registry cannot be opened, or a name, version or stage is not in it."""

    code = "E800"
    exit_status = 12
    default_hint = "run `edgeopt models` to list registered deployments"


class MissingExtraError(EdgeoptError):
    """A feature the user asked for needs an optional package that is not installed (an edgeopt extra)."""

    code = "E900"
    exit_status = 13
    default_hint = "install the extra the message names, e.g. pip install 'edgeopt[torch]'"


class FarmError(EdgeoptError):
    """The device farm cannot be reached, or does not offer the devices or targets asked for (``edgeopt.farm``)."""

    code = "E950"
    exit_status = 14
    default_hint = "run `edgeopt farm status ADDRESS` to see the farm's nodes, devices and targets"


def error_classes() -> list[type[EdgeoptError]]:
    """Every error class defined here, the base first."""
    found: list[type[EdgeoptError]] = []
    pending: list[type[EdgeoptError]] = [EdgeoptError]
    while pending:
        cls = pending.pop(0)
        if cls.__module__ == __name__ and cls not in found:
            found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def exit_status_for_code(code: str) -> int:
    """The CLI's exit status for an error code (``"E310"`` -> 7); 1 for a code no class here has (a plugin's)."""
    for cls in error_classes():
        if cls.code == code:
            return cls.exit_status
    return EdgeoptError.exit_status
