from flask import redirect, render_template, url_for
from flask_login import current_user

from monitorapp.auth.access import login_required
from monitorapp.dashboard import bp


@bp.get("/")
def home():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.index"))
    return render_template("home.html")


@bp.get("/dashboard")
@login_required
def index():
    return render_template("dashboard/index.html")
