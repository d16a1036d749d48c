"""Fill a realistic demo data set: three users (viewer, reviewer, admin), several suites, hundreds of cases and
runs across eight RCs of two products (Web Shop, Mobile App), interleaved in time. Passwords are random and printed
once. Refuses to run with production settings."""

from __future__ import annotations

import random
import secrets
from datetime import timedelta

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import Role, User
from releases import store
from releases.models import ReleaseCandidate, RunStatus, TestCase, TestSuite

DEMO_USERS = [
    ("admin@demo.local", "Ada Admin", Role.ADMIN),
    ("reviewer@demo.local", "Rita Reviewer", Role.REVIEWER),
    ("viewer@demo.local", "Victor Viewer", Role.VIEWER),
]
SUITES = [
    ("Checkout", "Web Shop", "Cart, payment and order confirmation.", ["cart", "payment", "orders", "tax"]),
    ("Accounts", "Web Shop", "Sign-up, login, profile and password flows.", ["login", "signup", "profile"]),
    ("Search", "Web Shop", "Catalogue search, filters and ranking.", ["query", "filters", "ranking"]),
    ("Sync engine", "Mobile App", "Offline edits and conflict resolution.", ["offline", "conflicts", "network"]),
    ("Notifications", "Mobile App", "Push and in-app notifications.", ["push", "inbox", "settings"]),
]
OWNERS = ["alice@demo.local", "bob@demo.local", "chen@demo.local", "dana@demo.local", "eve@demo.local"]
# (product, RC name) in release order: each product has its own RCs, interleaved in time; the last two of each
# product are still in testing.
RCS = [
    ("Web Shop", "shop-2026.10-rc1"),
    ("Mobile App", "app-2026.10-rc1"),
    ("Web Shop", "shop-2026.10-rc2"),
    ("Mobile App", "app-2026.10-rc2"),
    ("Web Shop", "shop-2026.11-rc1"),
    ("Mobile App", "app-2026.11-rc1"),
    ("Web Shop", "shop-2026.11-rc2"),
    ("Mobile App", "app-2026.11-rc2"),
]
VERBS = ["creates", "updates", "deletes", "validates", "rejects", "retries", "paginates", "exports", "restores"]
OBJECTS = ["order", "session", "address", "coupon", "profile", "draft", "message", "filter", "token", "receipt"]
CONDITIONS = [
    "with valid input",
    "on slow network",
    "after timeout",
    "with unicode names",
    "as a new user",
    "with an expired card",
    "in dark mode",
    "under load",
    "after logout",
    "with 2 tabs open",
]


class Command(BaseCommand):
    help = "Fill the database with demo users, suites, cases and RC runs."

    def add_arguments(self, parser):
        parser.add_argument("--if-empty", action="store_true", help="Do nothing when any user already exists.")
        parser.add_argument("--cases-per-suite", type=int, default=80)
        parser.add_argument("--seed", type=int, default=20261125, help="Random seed (the data set is repeatable).")
        parser.add_argument(
            "--reset-passwords", action="store_true", help="Give the demo users new passwords and print them."
        )

    def handle(self, *args, **options):
        if not settings.SEED_DEMO_ALLOWED:
            raise CommandError("seed_demo refuses to run with production settings.")
        if options["reset_passwords"]:
            self._print_credentials(self._reset_passwords())
            return
        if options["if_empty"] and User.objects.exists():
            self.stdout.write(
                "Demo data already present; demo users: "
                + ", ".join(email for email, _, _ in DEMO_USERS)
                + ". Their passwords were printed on first start; new ones: "
                "`python manage.py seed_demo --reset-passwords`."
            )
            return
        rng = random.Random(options["seed"])
        credentials = self._create_users()
        cases, runs = self._create_release_data(rng, options["cases_per_suite"])
        self._after_seed()
        self.stdout.write(
            self.style.SUCCESS(f"Seeded {len(SUITES)} suites, {cases} cases, {len(RCS)} RCs and {runs} runs.")
        )
        self._print_credentials(credentials)

    def _after_seed(self) -> None:
        """Derived data (metric summaries) is rebuilt by its owning app once seeding is done."""
        from django.core.management import call_command, get_commands

        if "rebuild_summaries" in get_commands():
            call_command("rebuild_summaries", verbosity=0)

    def _create_users(self) -> list[tuple[str, str, str]]:
        credentials = []
        for email, name, role in DEMO_USERS:
            password = secrets.token_urlsafe(12)
            user = User.objects.create_user(email=email, password=password, display_name=name, role=role)
            user.verified = True
            user.save(update_fields=["verified"])
            EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
            credentials.append((email, password, role))
        return credentials

    def _reset_passwords(self) -> list[tuple[str, str, str]]:
        credentials = []
        for email, _, role in DEMO_USERS:
            user = User.objects.filter(email=email).first()
            if user is None:
                continue
            password = secrets.token_urlsafe(12)
            user.set_password(password)
            user.save(update_fields=["password"])
            credentials.append((email, password, role))
        return credentials

    def _print_credentials(self, credentials: list[tuple[str, str, str]]) -> None:
        self.stdout.write("\nDemo users (shown once; keep them or reset with --reset-passwords):")
        for email, password, role in credentials:
            self.stdout.write(f"  {role:<9} {email:<22} password: {password}")
        self.stdout.write("")

    def _create_release_data(self, rng: random.Random, cases_per_suite: int) -> tuple[int, int]:
        reviewer = User.objects.get(email="reviewer@demo.local")
        now = timezone.now()
        rcs_by_product: dict[str, list[ReleaseCandidate]] = {}
        for index, (product, name) in enumerate(RCS):
            state = ReleaseCandidate.State.RELEASED if index < len(RCS) - 4 else ReleaseCandidate.State.TESTING
            rcs_by_product.setdefault(product, []).append(
                ReleaseCandidate.objects.create(
                    name=name,
                    product=product,
                    sequence=(index + 1) * 10,
                    state=state,
                    created_at=now - timedelta(days=4 * (len(RCS) - index)),
                )
            )
        case_count = 0
        run_count = 0
        for suite_name, product, description, categories in SUITES:
            suite = TestSuite.objects.create(
                name=suite_name, product=product, description=description, created_by=reviewer
            )
            prefix = suite_name.split()[0][:4].upper()
            cases = [
                TestCase(
                    suite=suite,
                    key=f"{prefix}-{number:03d}",
                    title=f"{rng.choice(OBJECTS).title()} {rng.choice(VERBS)} {rng.choice(CONDITIONS)}",
                    category=rng.choice(categories),
                    task=f"TASK-{rng.randint(100, 999)}",
                    owner=rng.choice(OWNERS),
                    priority=rng.choices([1, 2, 3, 4], weights=[1, 3, 4, 2])[0],
                    tags=rng.sample(["smoke", "regression", "api", "ui", "security", "perf"], k=rng.randint(0, 3)),
                    created_by=reviewer,
                )
                for number in range(1, cases_per_suite + 1)
            ]
            TestCase.objects.bulk_create(cases)
            case_count += len(cases)
            runs = []
            rcs = rcs_by_product[product]
            for case in cases:
                flaky = rng.random() < 0.06
                base_fail = 0.04 + (0.08 if case.priority >= 3 else 0.02)
                for rc_index, rc in enumerate(rcs):
                    if rc_index == len(rcs) - 1 and rng.random() < 0.35:
                        continue  # the newest RC is still being tested
                    roll = rng.random()
                    if flaky:
                        status = RunStatus.FAIL if roll < 0.5 else RunStatus.PASS
                    elif roll < base_fail:
                        status = RunStatus.FAIL
                    elif roll < base_fail + 0.05:
                        status = RunStatus.PENDING
                    else:
                        status = RunStatus.PASS
                    runs.append(
                        store.NewRun(
                            case_id=case.pk,
                            release_candidate_id=rc.pk,
                            status=status,
                            mantis_ids=[rng.randint(1000, 9999)] if status == RunStatus.FAIL else [],
                            notes="Fails intermittently on CI." if flaky and status == RunStatus.FAIL else "",
                            executed_at=store.to_millis(rc.created_at + timedelta(hours=rng.randint(1, 120))),
                            executed_by_id=reviewer.pk,
                        )
                    )
            # Through the releases store, like every other writer of runs (latest flags and summary deltas).
            for start in range(0, len(runs), 500):
                store.runs_append(runs[start : start + 500])
            run_count += len(runs)
        return case_count, run_count
