"""``flask shop ...`` commands for operators and the Procfile's release step."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from orders.shop.catalog import seed_demo_catalogue
from orders.web.extensions import db, db_session

shop = AppGroup("shop", help="Shop operations.")


@shop.command("seed")
def seed() -> None:
    """Load the demo catalogue and SAVE10 if the catalogue is empty."""
    if seed_demo_catalogue(db_session()):
        db.session.commit()
        click.echo("Loaded the demo catalogue and discount code SAVE10.")
    else:
        click.echo("Catalogue already has products; nothing loaded.")


def init_cli(app: Flask) -> None:
    app.cli.add_command(shop)
