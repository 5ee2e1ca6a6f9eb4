"""The on-sale: one event, N registered buyers, K at a time each trying to buy and pay. Some never
pay, some double-click Pay (two request ids at once), some retry a call with the same request id.
Every call is timed and classified; expected business answers (SOLD_OUT, a declined card, a rejected
double payment, a replay) are outcomes, anything else is an error. Afterwards the scenario waits for
the stack to come to rest and checks the invariants."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from loadtest.clients import Answer, ShopClient, TicketTypeSpec
from stack.invariants import violations

# Per-call outcomes that are the system working as designed.
EXPECTED = frozenset({"ok", "held", "sold_out", "replayed", "confirmed", "declined", "double_pay_rejected"})
# How many times a buyer whose card is declined tries again (each with a new request id).
PAY_ATTEMPTS = 3


@dataclass(frozen=True)
class Scenario:
    """What to simulate. Shares are per buyer and drawn independently."""

    buyers: int = 5000
    seats: int = 1000
    concurrency: int = 200
    ticket_types: int = 1
    quantity: int = 1
    strategy: str = "COMPARE_AND_SET"
    transport: str = "rest"
    never_pay: float = 0.1
    pay_twice: float = 0.05
    retry_same_key: float = 0.05
    # Share of cards the simulated gateway declines during the sale (0 leaves its mode alone).
    decline_rate: float = 0.0
    seed: int | None = None
    # How long to wait after the sale for asynchronous work (outbox, JetStream, notifications).
    settle_seconds: float = 60.0

    def capacities(self) -> list[TicketTypeSpec]:
        """`seats` split over the ticket types, the remainder going to the first ones."""
        if self.ticket_types < 1 or self.seats < self.ticket_types:
            raise ValueError(f"need 1 <= ticket types ({self.ticket_types}) <= seats ({self.seats})")
        base, extra = divmod(self.seats, self.ticket_types)
        return [
            TicketTypeSpec(f"T{n + 1:03d}", base + (1 if n < extra else 0)) for n in range(self.ticket_types)
        ]


@dataclass(frozen=True)
class Sample:
    """One call: which operation, when it started (seconds since the phase began), how long it
    took, and what it came to."""

    op: str
    start: float
    seconds: float
    outcome: str


@dataclass(frozen=True)
class Target:
    """Where the stack is: Envoy's public listener (REST and gRPC), its admin API, the database."""

    public_url: str
    public_grpc: str
    admin_api_url: str
    database_url: str


@dataclass
class Result:
    scenario: Scenario
    event_id: str = ""
    ticket_types: list[TicketTypeSpec] = field(default_factory=list)
    setup: list[Sample] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    buyers: Counter[str] = field(default_factory=Counter)
    anomalies: Counter[str] = field(default_factory=Counter)
    setup_seconds: float = 0.0
    sale_seconds: float = 0.0
    settle_seconds: float = 0.0
    wall_seconds: float = 0.0
    availability: list[dict[str, int | str]] = field(default_factory=list)
    tickets_confirmed: int = 0  # what buyers were told they bought
    violations: list[str] = field(default_factory=list)
    client_checks: list[str] = field(default_factory=list)

    @property
    def errors(self) -> Counter[str]:
        """Unexpected outcomes by operation, code and reason."""
        found = Counter(
            f"{s.op} {s.outcome.removeprefix('error:')}"
            for s in (*self.setup, *self.samples)
            if s.outcome not in EXPECTED
        )
        return found + self.anomalies

    @property
    def passed(self) -> bool:
        return not self.violations and not self.client_checks and not self.errors


Progress = Callable[[str, int, dict[str, int]], None]  # phase, done, counters


class _Recorder:
    """Times calls against one phase's clock and keeps the samples."""

    def __init__(self) -> None:
        self.began = time.perf_counter()
        self.samples: list[Sample] = []
        # Answers that are each fine alone but wrong together (a replay naming another order).
        self.anomalies: Counter[str] = Counter()

    async def call(
        self, op: str, make: Awaitable[Answer], classify: Callable[[Answer], str]
    ) -> tuple[Answer, str]:
        started = time.perf_counter() - self.began
        answer = await make
        outcome = classify(answer)
        self.samples.append(Sample(op, started, answer.seconds, outcome))
        return answer, outcome


def _error(answer: Answer) -> str:
    return f"error:{answer.code}/{answer.reason}" if answer.reason else f"error:{answer.code}"


def _created(answer: Answer) -> str:
    if answer.ok:
        return "replayed" if answer.replayed else "held"
    if answer.code == "ABORTED" and answer.reason == "SOLD_OUT":
        return "sold_out"
    return _error(answer)


def _paid(double_click: bool) -> Callable[[Answer], str]:
    def classify(answer: Answer) -> str:
        if answer.ok:
            if answer.replayed:
                return "replayed"
            return "confirmed" if answer.body.get("status") == "CONFIRMED" else _error(answer)
        if answer.code == "FAILED_PRECONDITION" and answer.reason == "PAYMENT_DECLINED":
            return "declined"
        # The other click of a double payment: the first is under way, or it already paid.
        if double_click and (answer.code, answer.reason) in (
            ("ABORTED", "PAYMENT_IN_PROGRESS"),
            ("FAILED_PRECONDITION", "ORDER_NOT_PAYABLE"),
        ):
            return "double_pay_rejected"
        return _error(answer)

    return classify


def _user_made(answer: Answer) -> str:
    return "ok" if answer.ok and answer.body.get("id") else _error(answer)


async def _pool(count: int, concurrency: int, work: Callable[[int], Awaitable[None]]) -> None:
    """Runs work(0..count-1) with at most `concurrency` at a time."""
    indexes = iter(range(count))

    async def worker() -> None:
        for i in indexes:
            await work(i)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))


async def set_decline_rate(admin_api_url: str, rate: float) -> None:
    """Sets the simulated gateway's decline rate; payments caches its mode for up to 0.5 s."""
    async with httpx.AsyncClient(base_url=admin_api_url, trust_env=False, timeout=10) as admin:
        reply = await admin.post("/admin/v1/payments/mode", json={"declineRate": rate} if rate else {})
        reply.raise_for_status()
    await asyncio.sleep(0.6)


async def run_sale(
    client: ShopClient, target: Target, scenario: Scenario, progress: Progress | None = None
) -> Result:
    """Creates the event and the buyers, runs the sale, waits for rest and checks the invariants."""
    began = time.perf_counter()
    rng = random.Random(scenario.seed)
    result = Result(scenario, ticket_types=scenario.capacities())
    run_id = uuid.uuid4().hex[:10]
    report = progress or (lambda _phase, _done, _counters: None)

    made = await client.create_event(f"Load test {run_id}", result.ticket_types)
    if not made.ok:
        raise RuntimeError(f"could not create the event: {made.code} {made.reason}")
    result.event_id = str(made.body["id"])

    # Phase 1: the fans register (not part of the sale's figures).
    setup = _Recorder()
    user_ids: list[str] = [""] * scenario.buyers
    counters: Counter[str] = Counter()

    async def register(i: int) -> None:
        answer, outcome = await setup.call(
            "create_user", client.create_user(f"fan-{run_id}-{i}@example.com", f"Fan {i}"), _user_made
        )
        if outcome == "ok":
            user_ids[i] = str(answer.body["id"])
        counters[outcome if outcome in EXPECTED else "errors"] += 1
        report("users", counters.total(), counters)

    await _pool(scenario.buyers, scenario.concurrency, register)
    result.setup, result.setup_seconds = setup.samples, time.perf_counter() - setup.began

    # Phase 2: the sale. Draw every buyer's behaviour first, so a seed reproduces the same mix.
    plans = [
        (
            rng.random() < scenario.never_pay,
            rng.random() < scenario.pay_twice,
            rng.random() < scenario.retry_same_key,
            rng.choice(result.ticket_types).name,
        )
        for _ in range(scenario.buyers)
    ]
    if scenario.decline_rate:
        await set_decline_rate(target.admin_api_url, scenario.decline_rate)
    sale = _Recorder()
    counters = Counter()
    done = 0

    async def buy(i: int) -> None:
        nonlocal done
        outcome = "no_user"
        if user_ids[i]:
            outcome = await _buyer(client, sale, scenario, result.event_id, user_ids[i], *plans[i])
        result.buyers[outcome] += 1
        if outcome == "bought":
            result.tickets_confirmed += scenario.quantity
        done += 1
        report("buyers", done, result.buyers)

    try:
        await _pool(scenario.buyers, scenario.concurrency, buy)
    finally:
        if scenario.decline_rate:
            await set_decline_rate(target.admin_api_url, 0.0)
    result.samples, result.sale_seconds = sale.samples, time.perf_counter() - sale.began
    result.anomalies = sale.anomalies

    # Phase 3: come to rest (inventory confirms holds and notify writes confirmations from
    # JetStream), then check I1-I5 on this event, and what buyers were told against the stock.
    settling = time.perf_counter()
    deadline = settling + scenario.settle_seconds
    while True:
        result.violations = await violations(target.database_url, events=[result.event_id])
        if not result.violations or time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.5)
    result.settle_seconds = time.perf_counter() - settling
    stock = await client.availability(result.event_id)
    result.availability = [
        {
            "ticket_type": str(t.get("ticketType", "")),
            **{k: int(t.get(k, 0)) for k in ("capacity", "available", "held", "sold")},
        }
        for t in stock.body.get("ticketTypes", [])
    ]
    result.client_checks = client_checks(result, stock)
    result.wall_seconds = time.perf_counter() - began
    return result


async def _buyer(
    client: ShopClient,
    rec: _Recorder,
    scenario: Scenario,
    event_id: str,
    user_id: str,
    never_pay: bool,
    pay_twice: bool,
    retry_same_key: bool,
    ticket_type: str,
) -> str:
    """One fan: order (maybe sent twice with one request id), then pay (maybe double-clicked,
    maybe re-sent with the same request id). Answers the buyer's end state."""
    key = f"order-{uuid.uuid4().hex}"

    def create() -> Awaitable[tuple[Answer, str]]:
        order = client.create_order(key, user_id, event_id, ticket_type, scenario.quantity, scenario.strategy)
        return rec.call("create_order", order, _created)

    if retry_same_key:
        # The client timed out and sent it again while the first was still running.
        (first, first_outcome), (second, _) = await asyncio.gather(create(), create())
        if first.ok != second.ok or first.body.get("id") != second.body.get("id"):
            rec.anomalies["create_order REPLAY_DISAGREES"] += 1
        order, outcome = (first, first_outcome) if first.ok else (second, _created(second))
    else:
        order, outcome = await create()
    if outcome == "sold_out":
        return "sold_out"
    if not order.ok:
        return "error"
    if never_pay:
        return "never_paid"
    order_id = str(order.body["id"])

    for _attempt in range(PAY_ATTEMPTS):
        pay_key = f"pay-{uuid.uuid4().hex}"
        if pay_twice:
            other_key = f"pay-{uuid.uuid4().hex}"
            answers = await asyncio.gather(
                rec.call("pay", client.pay_order(order_id, pay_key), _paid(True)),
                rec.call("pay", client.pay_order(order_id, other_key), _paid(True)),
            )
            outcomes = [o for _, o in answers]
            if outcomes.count("confirmed") > 1:
                rec.anomalies["pay TWO_PAYMENTS_CONFIRMED"] += 1
            paid = next((a for a, o in answers if o == "confirmed"), None)
            pay_key = pay_key if answers[0][1] == "confirmed" else other_key
            declined = "declined" in outcomes
        else:
            answer, outcome = await rec.call("pay", client.pay_order(order_id, pay_key), _paid(False))
            paid = answer if outcome == "confirmed" else None
            declined = outcome == "declined"
        if paid is not None:
            if retry_same_key:
                # The reply was lost; the same request id must answer the same confirmed order.
                again, outcome = await rec.call("pay", client.pay_order(order_id, pay_key), _paid(False))
                if outcome == "replayed" and again.body.get("status") != "CONFIRMED":
                    rec.anomalies["pay REPLAY_NOT_CONFIRMED"] += 1
            return "bought"
        if not declined:
            return "error"
    return "declined"


def client_checks(result: Result, stock: Answer) -> list[str]:
    """What buyers were told against what the stock says (the database-side checks are I1-I5)."""
    if not stock.ok:
        return [f"could not read availability: {stock.code} {stock.reason}"]
    problems = []
    sold = sum(int(t["sold"]) for t in result.availability)
    if sold != result.tickets_confirmed:
        problems.append(f"{sold} tickets sold but buyers were told of {result.tickets_confirmed}")
    for t in result.availability:
        if int(t["sold"]) + int(t["held"]) > int(t["capacity"]):
            problems.append(
                f"{t['ticket_type']}: sold {t['sold']} + held {t['held']} > capacity {t['capacity']}"
            )
    if sold > result.scenario.seats:
        problems.append(f"{sold} tickets sold beyond the {result.scenario.seats} seats")
    if len(result.availability) != len(result.ticket_types):
        problems.append(
            f"availability lists {len(result.availability)} ticket types, not {len(result.ticket_types)}"
        )
    return problems


def summary_counts(result: Result) -> dict[str, Any]:
    """Outcome counts per operation."""
    per_op: dict[str, Counter[str]] = {}
    for s in (*result.setup, *result.samples):
        per_op.setdefault(s.op, Counter())[s.outcome] += 1
    return {op: dict(c.most_common()) for op, c in per_op.items()}
