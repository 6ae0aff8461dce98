FLASK_APP=monitorapp.cli:app_for_cli
