"""A Flare plugin that guards the dashboard with HTTP Basic auth.

The user name and password come from the environment::

    export DASHBOARD_USER=admin
    export DASHBOARD_PASSWORD='a long random password'

Register the module when setting Flare up::

    import auth_basic_plugin
    from fastapi import FastAPI
    from flare_core import setup

    app = FastAPI()
    setup(app, plugins=[auth_basic_plugin])

The variables do not start with ``FLARE_`` because Flare rejects
``FLARE_*`` variables that are not its own options. A dependency passed as
``dashboard_auth_dependency`` takes precedence over this hook.

NOTE: Basic auth sends the password with every request, so serve the
dashboard over HTTPS only.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable

from fastapi import Depends, HTTPException
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from flare_core import FlareConfig, FlareConfigError, hookimpl

USER_VARIABLE = "DASHBOARD_USER"
PASSWORD_VARIABLE = "DASHBOARD_PASSWORD"
REALM = "Flare"

_basic = HTTPBasic(auto_error=False, realm=REALM)


def make_basic_auth(user: str, password: str) -> Callable[..., str]:
    """Build a dependency that accepts exactly this user name and password."""
    expected_user = user.encode()
    expected_password = password.encode()

    def check_basic_auth(
        credentials: HTTPBasicCredentials | None = Depends(_basic),  # noqa: B008
    ) -> str:
        if credentials is not None:
            # Compare both parts every time, in constant time, so the response
            # time does not reveal which one was wrong.
            user_ok = secrets.compare_digest(
                credentials.username.encode(), expected_user
            )
            password_ok = secrets.compare_digest(
                credentials.password.encode(), expected_password
            )
            if user_ok and password_ok:
                return credentials.username
        raise HTTPException(
            status_code=401,
            detail="Invalid or missing user name and password",
            headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
        )

    return check_basic_auth


@hookimpl
def flare_dashboard_auth(config: FlareConfig) -> Callable[..., str]:
    """Return the Basic auth dependency built from the environment.

    :raises FlareConfigError: when either variable is unset or empty.
    """
    user = os.environ.get(USER_VARIABLE, "")
    password = os.environ.get(PASSWORD_VARIABLE, "")
    missing = [
        name
        for name, value in ((USER_VARIABLE, user), (PASSWORD_VARIABLE, password))
        if not value
    ]
    if missing:
        raise FlareConfigError(
            f"auth_basic_plugin needs {' and '.join(missing)} set to the dashboard's "
            "user name and password; set them or remove the plugin from setup()"
        )
    return make_basic_auth(user, password)
