"""The deployment registry: which optimized model runs where, how versions compare, which one is promoted.

Every ``edgeopt.deploy`` (and so every ``edgeopt deploy``) registers its verified artifact here unless
``EDGEOPT_REGISTRY=off``; see ``docs/registry.md``.
"""

from edgeopt.registry.diff import Delta, RecordDiff, diff_records
from edgeopt.registry.lifecycle import artifact_of, deploy_and_register, redeploy, registered
from edgeopt.registry.records import STAGES, DeploymentRecord
from edgeopt.registry.refs import RegistryError, parse_ref
from edgeopt.registry.store import Registry, open_registry, registry_path, require_registry

__all__ = [
    "STAGES",
    "Delta",
    "DeploymentRecord",
    "RecordDiff",
    "Registry",
    "RegistryError",
    "artifact_of",
    "deploy_and_register",
    "diff_records",
    "open_registry",
    "parse_ref",
    "redeploy",
    "registered",
    "registry_path",
    "require_registry",
]
