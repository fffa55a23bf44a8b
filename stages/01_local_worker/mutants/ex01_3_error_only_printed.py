"""Prints the traceback on the worker's stderr instead of sending an ERROR frame: the parent
learns only that the worker exited with code 1, not what went wrong."""


def run_work_fn(work_fn: Callable[[Channel], object], handle: Channel) -> int:
    code, message = 0, None
    try:
        work_fn(handle)
    except ChannelClosed:
        pass
    except SystemExit as e:
        code, message = _exit_code(e.code)
        if message is not None:
            _print_quietly(message)
    except BaseException as e:
        code = 1
        _print_quietly("".join(traceback.format_exception(e)))
    _flush_stdio()
    _send_quietly(handle, EXIT, encode_exit(code, message))
    return code
