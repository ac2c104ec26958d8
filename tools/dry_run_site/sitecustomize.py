"""Dry runs of tools/gpu_check.sh: make the packages the GPU machine lacks unimportable here too.

tools/gpu_check.sh --dry-run puts this folder first on PYTHONPATH, so every Python process it
starts imports this module at start-up. GENNORM_BLOCK_MODULES (comma-separated top-level names,
default gradio,gradio_client,torch_fidelity) then raise ModuleNotFoundError on import, exactly as
on the H200 image where they are not installed: a step that needs them fails in the dry run.
"""
import os
import sys

_BLOCKED = {m.strip() for m in os.environ.get("GENNORM_BLOCK_MODULES", "gradio,gradio_client,torch_fidelity").split(",")
            if m.strip()}


class _Blocker:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by tools/dry_run_site: absent on the GPU "
                                      "machine)", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
