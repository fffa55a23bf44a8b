"""Catches only ImportError: a module that raises anything else at import (a KeyError in its
settings) crashes the server with a bare traceback instead of a clear message."""


def load_work_fn(spec: str) -> WorkFn:
    module_name, sep, fn_name = spec.rpartition(":") if ":" in spec else spec.rpartition(".")
    if not (sep and module_name and fn_name):
        raise WorkFnNotFound(f"--work-fn {spec!r}: expected module.function or file.py:function")
    try:
        if module_name.endswith(".py"):
            module = _import_file(Path(module_name))
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except (ImportError, FileNotFoundError) as e:
        raise WorkFnNotFound(
            f"--work-fn {spec!r}: cannot import {module_name!r}: "
            f"{type(e).__name__}: {e}{_where_raised(e)}"
        ) from e
    if not hasattr(module, fn_name):
        raise WorkFnNotFound(f"--work-fn {spec!r}: {module_name!r} has no function {fn_name!r}")
    work_fn = getattr(module, fn_name)
    if not callable(work_fn):
        raise WorkFnNotFound(
            f"--work-fn {spec!r}: {module_name!r}.{fn_name} is not callable "
            f"(its type is {type(work_fn).__name__})"
        )
    return work_fn  # type: ignore[no-any-return]
