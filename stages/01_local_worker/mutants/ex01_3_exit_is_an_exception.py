"""Catches sys.exit with every other exception: sys.exit(3) becomes an ERROR frame and code 1."""


def run_work_fn(work_fn: Callable[[Channel], object], handle: Channel) -> int:
    code, message = 0, None
    try:
        work_fn(handle)
    except ChannelClosed:
        pass
    except BaseException as e:
        code = 1
        if not _send_quietly(handle, ERROR, encode_error(e)):
            _print_quietly("".join(traceback.format_exception(e)))
    _flush_stdio()
    _send_quietly(handle, EXIT, encode_exit(code, message))
    return code
