"""Assertions shared by the command-line tests."""


def assert_one_line_error(result, *fragments, exit_code=2):
    assert result.exit_code == exit_code
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("softplus: error: ")
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]
    assert result.stdout == ""
