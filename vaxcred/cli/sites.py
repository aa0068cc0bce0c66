"""``vaxcred sites``: register many vaccination sites at once (names, provinces, site certificates), list them."""

from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path

import click

from vaxcred import errors
from vaxcred.cli._common import fail, open_chain, parse_at, safe
from vaxcred.cli._pipeline import at_option, db_option, number, open_db, storage_errors
from vaxcred.crypto import ExternalKey
from vaxcred.keys import KeyChainDir, make_site_certificate
from vaxcred.pipeline.records.sites import Site, list_sites, read_sites_csv, register_sites

_REGISTER_EPILOG = """\
FILE is a UTF-8 CSV with a header row:

\b
  site_id,name,province
  VN001-S01,Trạm Y tế phường Phúc Xá,001
  VN079-S07,Bệnh viện Quận 7,079

province is the three-digit code of the CCCD list (empty when unknown). Every site is created or updated in
the database in one transaction. With --keys, each site without a certificate in KEYS/sites/ gets one
under the site CA (one passphrase for all, keys encrypted, mode 0600); existing site keys are kept, so the
command can be run again after adding rows. Exit code: 0 done; 1 a bad row (its line is named; nothing is
stored) or a key could not be made; 3 usage error.
"""


@click.group("sites")
def sites() -> None:
    """Vaccination sites: names, provinces and site certificates, many at once."""


def _make_certificates(chain: KeyChainDir, wanted: list[Site], now_at: str | None) -> tuple[int, int]:
    """Site certificates for the sites without one in the chain's ``sites/`` folder: (made, kept)."""
    folder = chain.folder / "sites"
    folder.mkdir(mode=0o700, exist_ok=True)
    now = parse_at(now_at)
    if chain.token is not None:  # keys on a token: each site key generated inside it, one after the other
        todo = [s for s in wanted if not (folder / f"{s.site_id}.pem").exists()]
        for site in todo:
            chain.new_site(site_id=site.site_id, site_name=site.name or site.site_id, now=now)
        return len(todo), len(wanted) - len(todo)
    todo = [s for s in wanted if not (folder / f"{s.site_id}.key").exists()]
    if not todo:
        return 0, len(wanted)
    site_ca = chain.load("site-ca")  # one passphrase check and one decryption for every site

    def make(site: Site) -> None:
        pair = make_site_certificate(
            site_ca, site_id=site.site_id, site_name=site.name or site.site_id, now=now
        )
        assert not isinstance(pair.private_key, ExternalKey)  # made in memory for a file chain
        chain.store_site(site.site_id, pair, now=now)  # the key file, the certificate, the log line

    # the key derivations (PBKDF2) release the GIL: a few threads use the machine's cores
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for future in [pool.submit(make, site) for site in todo]:
            future.result()
    return len(todo), len(wanted) - len(todo)


@sites.command("register", epilog=_REGISTER_EPILOG)
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--keys",
    "folder",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Key-chain folder: also make the site certificates (signed by its site CA).",
)
@db_option
@at_option("The site certificates' start of validity")
def register(file: Path, folder: Path | None, db_url: str, at: str | None) -> None:
    """Register the sites of FILE (site_id,name,province) in the database and, with --keys, give each a site
    certificate — one run and one passphrase for all of them."""
    with storage_errors():
        wanted = list(read_sites_csv(file))
    if folder is not None:
        try:
            made, kept = _make_certificates(open_chain(folder), wanted, at)
        except (errors.VaxcredError, ValueError) as e:
            raise fail(e) if isinstance(e, errors.VaxcredError) else click.ClickException(str(e)) from e
    db = open_db(db_url)
    try:
        with storage_errors():
            created, updated = register_sites(db, wanted)
    finally:
        db.dispose()
    click.echo(
        f"{number(len(wanted))} sites: {number(created)} new, {number(updated)} updated in the database"
    )
    if folder is not None:
        click.echo(f"site certificates: {number(made)} made, {number(kept)} kept (in {folder / 'sites'})")


@sites.command("list")
@db_option
def list_(db_url: str) -> None:
    """The registered sites: ID, province, name."""
    db = open_db(db_url)
    try:
        with storage_errors():
            stored = list_sites(db)
    finally:
        db.dispose()
    for s in stored:
        click.echo(f"{safe(s.site_id):<24} {s.province_code or '---'}  {safe(s.name or '(no name)')}")
    click.echo(f"{number(len(stored))} sites")
