"""Takes sys.exit("why") as code 1 but drops its message: the parent never learns why."""


def run_work_fn(work_fn: Callable[[Channel], object], handle: Channel) -> int:
    code = 0
    try:
        work_fn(handle)
    except ChannelClosed:
        pass
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException as e:
        code = 1
        if not _send_quietly(handle, ERROR, encode_error(e)):
            _print_quietly("".join(traceback.format_exception(e)))
    _flush_stdio()
    _send_quietly(handle, EXIT, encode_exit(code, None))
    return code
