"""``flask shop ...`` and ``flask ops user ...``: commands for operators and the
Procfile's release step."""

from __future__ import annotations

import getpass

import click
from flask import Flask
from flask.cli import AppGroup

from orders.models import OpsRole
from orders.ops import accounts
from orders.shop.catalog import seed_demo_catalogue
from orders.web.extensions import db, db_session

shop = AppGroup("shop", help="Shop operations.")
ops = AppGroup("ops", help="Ops dashboard administration.")
user = AppGroup("user", help="Operator accounts (roles: admin acts, viewer only looks).")
ops.add_command(user)


@shop.command("seed")
def seed() -> None:
    """Load the demo catalogue and SAVE10 if the catalogue is empty."""
    if seed_demo_catalogue(db_session()):
        _done("Loaded the demo catalogue and discount code SAVE10.")
    else:
        click.echo("Catalogue already has products; nothing loaded.")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in a bare container
        return "cli"


def _done(message: str) -> None:
    """A command's one commit point: its writes (and audit row) commit together."""
    db.session.commit()
    click.echo(message)


def _refused(exc: accounts.AccountRefused) -> click.ClickException:
    db.session.rollback()
    return click.ClickException(exc.message)


PASSWORD = click.option(
    "--password",
    prompt=True,
    confirmation_prompt=True,
    hide_input=True,
    help="Prompted twice (read from stdin when piped); 12+ characters.",
)


@user.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice([r.value for r in OpsRole]),
    required=True,
    help="admin: sees and acts; viewer: sees every page, acts on nothing.",
)
@PASSWORD
def user_add(name: str, role: str, password: str) -> None:
    """Create an operator account."""
    try:
        accounts.add_user(db_session(), name, OpsRole(role), password, _actor())
    except accounts.AccountRefused as exc:
        raise _refused(exc) from None
    _done(f"Added {role} {name}.")


@user.command("set-password")
@click.argument("name")
@PASSWORD
def user_set_password(name: str, password: str) -> None:
    """Change an account's password; its sessions end."""
    try:
        ended = accounts.set_password(db_session(), name, password, _actor())
    except accounts.AccountRefused as exc:
        raise _refused(exc) from None
    _done(f"Password of {name} changed; {ended} session(s) ended.")


@user.command("remove")
@click.argument("name")
def user_remove(name: str) -> None:
    """Remove an account; its sessions end."""
    try:
        ended = accounts.remove_user(db_session(), name, _actor())
    except accounts.AccountRefused as exc:
        raise _refused(exc) from None
    _done(f"Removed {name}; {ended} session(s) ended.")


@user.command("list")
def user_list() -> None:
    """Every account with its role (the bootstrap admin from OPS_USERNAME is not listed)."""
    rows = accounts.list_users(db_session())
    db.session.rollback()
    if not rows:
        click.echo("No operator accounts.")
    for row in rows:
        changed = row.password_changed_at.strftime("%Y-%m-%d %H:%M")
        click.echo(f"{row.name}\t{row.role.value}\tpassword set {changed} UTC")


def init_cli(app: Flask) -> None:
    app.cli.add_command(shop)
    app.cli.add_command(ops)
