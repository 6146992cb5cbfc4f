"""The one exception type for problems the user can fix; the CLI prints it without a traceback."""

from mailappliance.exit_codes import EXIT_CODE_USER_ERROR


class UserError(Exception):
    """A problem the user can fix, described by one clear line per problem found.

    Validation reports every problem at once, so an error may carry several lines; each one stands
    on its own ("<where>: <what is wrong>; <what to do>").
    """

    def __init__(self, *lines: str, exit_code: int = EXIT_CODE_USER_ERROR) -> None:
        if not lines:
            raise ValueError("UserError needs at least one line")
        super().__init__("\n".join(lines))
        self.lines: tuple[str, ...] = lines
        self.exit_code = exit_code
