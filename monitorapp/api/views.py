from flask import render_template

from monitorapp.api import bp


@bp.get("/")
def docs():
    return render_template("api/docs.html")
