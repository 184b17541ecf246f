"""The WSGI entry point: settings from the environment, then create_app(). Nothing else."""

from verify_api.app import create_app
from verify_api.settings import Settings

app = create_app(Settings.from_env())
