"""Request validation errors become OpenAI's 400 naming the field."""

from api.errors import AuthenticationFailed, describe_validation_error


def test_union_member_tags_do_not_leak_into_param() -> None:
    errors = [
        {
            "type": "literal_error",
            "loc": ("body", "hyperparameters", "n_epochs", "literal['auto']"),
            "msg": "auto",
        },
        {
            "type": "greater_than_equal",
            "loc": ("body", "hyperparameters", "n_epochs", "int"),
            "msg": "must be >= 1",
        },
    ]
    param, message = describe_validation_error(errors)
    assert param == "hyperparameters.n_epochs"
    assert message == "Invalid value for hyperparameters.n_epochs: must be >= 1"


def test_unknown_and_missing_fields() -> None:
    assert describe_validation_error([{"type": "extra_forbidden", "loc": ("body", "foo"), "msg": ""}]) == (
        "foo",
        "Unrecognized request argument supplied: foo",
    )
    assert describe_validation_error([{"type": "missing", "loc": ("body", "model"), "msg": ""}]) == (
        "model",
        "Missing required parameter: model",
    )


def test_error_body_shape() -> None:
    assert AuthenticationFailed("Incorrect API key provided.").body() == {
        "error": {
            "message": "Incorrect API key provided.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
