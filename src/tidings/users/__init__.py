"""People who log in: users of an account (or the operator's staff), their passwords,
sessions and second factors."""
