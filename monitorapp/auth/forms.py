"""Forms for accounts and teams (Flask-WTF; CSRF is also checked app-wide)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, RadioField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Length, ValidationError

from monitorapp.auth.passwords import MAX_LENGTH, password_problem
from monitorapp.models import Role, TokenScope

ROLE_CHOICES = [
    SelectChoice(Role.OWNER.value, "Owner — everything, including members and deleting the team"),
    SelectChoice(Role.MEMBER.value, "Member — endpoints, channels and their own tokens"),
    SelectChoice(Role.VIEWER.value, "Viewer — read-only"),
]
SCOPE_CHOICES = [
    SelectChoice(TokenScope.READ.value, "Read only"),
    SelectChoice(TokenScope.WRITE.value, "Read and write"),
]


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


def _email_field(label: str = "Email") -> EmailField:
    return EmailField(
        label, filters=[_strip], validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)]
    )


class NewPasswordMixin:
    """A new password checked against the rules; `email_for_check` names the address."""

    def email_for_check(self) -> str | None:
        return None

    def validate_password(self, field) -> None:
        problem = password_problem(field.data or "", self.email_for_check())
        if problem:
            raise ValidationError(problem)


class RegisterForm(NewPasswordMixin, FlaskForm):
    email = _email_field()
    password = PasswordField("Password", validators=[DataRequired(), Length(max=MAX_LENGTH)])
    team_name = StringField("Team name", validators=[DataRequired(), Length(max=100)])

    def email_for_check(self) -> str | None:
        return self.email.data


class JoinForm(NewPasswordMixin, FlaskForm):
    """Sign-up through an invitation: the address is the invited one."""

    password = PasswordField("Password", validators=[DataRequired(), Length(max=MAX_LENGTH)])

    def __init__(self, email: str, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.invited_email = email

    def email_for_check(self) -> str | None:
        return self.invited_email


class LoginForm(FlaskForm):
    email = StringField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=MAX_LENGTH)])
    remember = BooleanField("Keep me signed in on this device")


class ForgotPasswordForm(FlaskForm):
    email = _email_field()


class ResetPasswordForm(NewPasswordMixin, FlaskForm):
    password = PasswordField("New password", validators=[DataRequired(), Length(max=MAX_LENGTH)])

    def __init__(self, email: str, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user_email = email

    def email_for_check(self) -> str | None:
        return self.user_email


class ChangePasswordForm(NewPasswordMixin, FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=MAX_LENGTH)])
    password = PasswordField("New password", validators=[DataRequired(), Length(max=MAX_LENGTH)])

    def __init__(self, email: str, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user_email = email

    def email_for_check(self) -> str | None:
        return self.user_email


class ChangeEmailForm(FlaskForm):
    email = _email_field("New email address")
    # Not `current_password`: the password form on the same page uses that id.
    password_check = PasswordField("Current password", validators=[DataRequired(), Length(max=MAX_LENGTH)])


class TeamNameForm(FlaskForm):
    name = StringField("Team name", validators=[DataRequired(), Length(max=100)])


class InviteForm(FlaskForm):
    email = _email_field()
    role = SelectField("Role", choices=ROLE_CHOICES, default=Role.MEMBER.value)


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES)


class DeleteTeamForm(FlaskForm):
    confirm = StringField("Type the team's name to confirm", validators=[DataRequired()])


class TokenForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=100)])
    scope = RadioField("Scope", choices=SCOPE_CHOICES, default=TokenScope.READ.value)


class SwitchTeamForm(FlaskForm):
    team_id = StringField(validators=[DataRequired()])
