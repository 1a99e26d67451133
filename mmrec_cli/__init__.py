"""mmrec: multimodal sequential recommendation from the command line and from Python.

The Python functions (`prepare`, `load_dataset`, `load_features`, `finetune`, `load_model`, `evaluate`,
`recommend`) live in `mmrec_cli.api` and are imported on first use, so that `mmrec --help` stays instant.
"""

__version__ = "0.1.0"

__all__ = ["prepare", "load_dataset", "load_features", "finetune", "load_model", "evaluate", "recommend"]


def __getattr__(name: str):
    if name in __all__:
        from mmrec_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'mmrec_cli' has no attribute {name!r}")
