"""The dashboard's forms (Flask-WTF: each carries and checks its CSRF token)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    HiddenField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, EqualTo, Length, Optional

from domain.accounts import ROLES, SCOPE_KINDS
from services.accounts import MAX_PASSWORD, MIN_PASSWORD


class SignInForm(FlaskForm):
    login = StringField(_l("Email or phone"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=MAX_PASSWORD)])
    next = HiddenField()


class SignOutForm(FlaskForm):
    pass


class ReviewForm(FlaskForm):
    """One review for the flags ticked in the queue (or the one flag of its page)."""

    ids = SelectMultipleField(coerce=int, validate_choice=False, validators=[DataRequired()])
    action = SelectField(choices=["confirmed", "dismissed", "open"])
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=1000)])
    next = HiddenField()


class InviteForm(FlaskForm):
    login = StringField(_l("Email or phone"), validators=[DataRequired(), Length(max=254)])
    name = StringField(_l("Name"), validators=[Optional(), Length(max=100)])
    role = SelectField(_l("Role"), choices=list(ROLES), default="viewer")
    scope_kind = SelectField(_l("Scope"), choices=list(SCOPE_KINDS), default="organization")
    target = StringField(_l("Body code or organization name"), validators=[Optional(), Length(max=200)])


class AccountActionForm(FlaskForm):
    pass


class SetPasswordForm(FlaskForm):
    password = PasswordField(
        _l("New password"), validators=[DataRequired(), Length(min=MIN_PASSWORD, max=MAX_PASSWORD)]
    )
    confirm = PasswordField(
        _l("Repeat the password"),
        validators=[DataRequired(), EqualTo("password", message=_l("The passwords differ"))],
    )
