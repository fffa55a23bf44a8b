"""Does not flush stdout and stderr: what the work function printed without a newline or a
flush is lost when the child exits with os._exit."""


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
        if not _send_quietly(handle, ERROR, encode_error(e)):
            _print_quietly("".join(traceback.format_exception(e)))
    _send_quietly(handle, EXIT, encode_exit(code, message))
    return code
