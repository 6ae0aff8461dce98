"""Placeholder views replaced by the accounts work (issue 3)."""

from flask import abort, redirect, url_for
from flask_login import logout_user

from monitorapp.auth import bp


@bp.get("/login")
def login():
    abort(404)


@bp.get("/register")
def register():
    abort(404)


@bp.get("/account")
def account():
    abort(404)


@bp.post("/logout")
def logout():
    logout_user()
    return redirect(url_for("dashboard.home"))
