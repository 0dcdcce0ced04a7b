from bookstore_shared.errors import Conflict, DomainError, Forbidden, NotFound, Unauthorized


class EmailTaken(Conflict):
    code, title = "email_taken", "An account with this email exists already"


class InvalidCredentials(Unauthorized):
    code, title = "invalid_credentials", "Wrong email or password"


class InvalidToken(Unauthorized):
    code, title = "invalid_token", "The access token is invalid or expired"


class UserNotFound(NotFound):
    code, title = "user_not_found", "User not found"


class InvalidApiKey(Unauthorized):
    code, title = "invalid_api_key", "The API key is unknown or revoked"


class InvalidRefreshToken(Unauthorized):
    code, title = "invalid_refresh_token", "The refresh token is invalid, used or expired"


class ApiKeyNotFound(NotFound):
    code, title = "api_key_not_found", "API key not found"


class WrongPassword(Forbidden):
    code, title = "wrong_password", "The current password is not right"


class InvalidResetToken(DomainError):
    status, code, title = 400, "invalid_reset_token", "The reset token is invalid, used or expired"
