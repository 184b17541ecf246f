"""The WSGI entry point: settings from the environment, then create_app(). Nothing else."""

from webapp import Settings, create_app

app = create_app(Settings.from_env())
