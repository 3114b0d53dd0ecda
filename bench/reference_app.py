"""The reference of the portal benchmark: the smallest Flask page and the smallest Flask form POST
that writes one row, served by the same gunicorn command as the portal, on the same database.

Its rates are this machine's ceiling for Flask under that gunicorn configuration; the benchmark
reports Conecta's splash page and registration as ratios to them (issue 16). The engine is built by
Conecta's own factory with the portal's pool options (pre-ping included), so the database side costs
what it costs the portal: the difference is the portal's own work.

  CONECTA_DATABASE_URL=... python bench/reference_app.py      # creates its table, once
  CONECTA_DATABASE_URL=... gunicorn --chdir bench reference_app:app
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from flask import Flask, redirect, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from portal.core.db import make_engine


class Base(DeclarativeBase):
    pass


class _Database(SQLAlchemy):
    def _make_engine(self, bind_key, options, app):  # noqa: ANN001, ANN202 - flask-sqlalchemy's hook
        options = dict(options)
        return make_engine(options.pop("url"), **options)


class Row(Base):
    __tablename__ = "bench_rows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)


db = _Database(model_class=Base, session_options={"expire_on_commit": False})
app = Flask("reference")
app.config.update(SQLALCHEMY_DATABASE_URI=os.environ["CONECTA_DATABASE_URL"],
                  SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True, "pool_size": 8, "max_overflow": 4})
db.init_app(app)


@app.get("/")
def page() -> str:
    """The smallest page."""
    return "<!doctype html><html lang=es><title>Referencia</title><p>Hola</p></html>"


@app.post("/row")
def write_row():  # noqa: ANN201
    """The smallest form POST that writes one row: insert, commit, redirect."""
    db.session.add(Row(value=request.form.get("value", "")[:64], created_at=datetime.now(timezone.utc)))
    db.session.commit()
    return redirect("/", 302)


if __name__ == "__main__":
    with app.app_context():
        Base.metadata.create_all(db.engine)
