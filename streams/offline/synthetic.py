"""A seeded synthetic event log and catalogue in our record contracts, at any scale.

The model behind it (docs/model.md, "Synthetic data at scale"):

* **Catalogue.** Every item has one topic (its ``category``, a genre such as
  ``Noir``), sometimes a second one, and belongs to a small *cluster* of
  related items of its topic (a series): the items of a cluster share the two
  topic words that open their titles (``"Neon Alley (1981)"``, then sequels
  such as ``"Neon Alley Fedora (1983)"``). Descriptions are made of words of
  the item's topics, so the text encoder has something to read. List prices
  are log-normal around a median per topic, with floor 70% and ceiling 130%
  of the list price, as MovieLens's.
* **Popularity.** Items get a random popularity rank; an item of rank ``r``
  has weight ``r ** -zipf``, and every draw of an item below is weighted by
  it, so a few items take a large share of the events (``zipf`` 0: uniform).
* **Users.** Each user prefers one to three topics (drawn by topic
  popularity, with random weights). A user's number of events is
  ``min_user_events`` plus a log-normal share of the rest, so most users are
  light and a few are heavy (a long tail), capped at half the catalogue; the
  counts add up to exactly ``events``. A user touches each item at most once,
  as in MovieLens, so every held-out target is an item new to its user.
* **Sessions.** A user is active from a moment drawn uniformly in the first
  ``days`` for 30-100% of the time left of them. Their events come in
  sessions of geometric length (mean ``session_mean``), log-normal gaps of
  about 40 seconds (at most 20 minutes) apart; between sessions an hour plus
  an exponential gap that spreads the sessions left over the time left.
* **Topics in a session.** A session starts on one of the user's topics
  (any topic, by popularity, with probability ``explore``). Each next item
  is, with probability ``related``, from the cluster of the previous item;
  with probability ``same_topic`` from the session's topic; otherwise from
  the whole catalogue, by popularity. The session's topic is drawn again
  with probability ``drift`` per event.
* **Event types.** ``view``/``click``/``add_to_cart``/``purchase``/``rating``,
  in proportions that lean to the stronger types on the user's preferred
  topics. Carts and purchases carry a price inside the item's floor and
  ceiling (purchases also a quantity); ratings are integers 1-5, higher on
  preferred topics.

Events are written in time order (ties in a fixed order) and streamed to
disk: memory holds the catalogue and one small state per user, never the log.
The same configuration gives the same bytes.
"""

from __future__ import annotations

import heapq
import math
import random
from array import array
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from streams.records.inputs import Event, Item

START_MS = 1_704_067_200_000
"""2024-01-01T00:00:00Z: the first moment of every synthetic log."""
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
LAST_YEAR = 2024
EVENTS_PER_USER = 30
"""Mean events per user when ``users`` is not given (a typical e-commerce log's order)."""

# name, median list price, words of the topic (titles and descriptions draw on them).
TOPICS: tuple[tuple[str, float, str], ...] = (
    (
        "Action",
        12.0,
        "Fury Blast Strike Chase Steel Bullet Edge Rampage Velocity Fist Impact Siege "
        "Rogue Target Crossfire Vendetta Thunder Havoc Lockdown Breakout Raid Blade "
        "Reckoning Takedown",
    ),
    (
        "Adventure",
        11.0,
        "Quest Island Treasure Jungle Voyage Lost Temple Compass Expedition Summit River "
        "Map Pirate Canyon Frontier Odyssey Relic Caravan Safari Horizon Glacier Lagoon "
        "Nomad Passage",
    ),
    (
        "Animation",
        9.0,
        "Bunny Toy Little Dragon Magic Bubble Puppy Rainbow Robot Panda Cookie Balloon "
        "Kitten Wonder Giggle Sparkle Moonbeam Teddy Doodle Pixie Sprout Whisker "
        "Jellybean Pebble",
    ),
    (
        "Comedy",
        8.0,
        "Wedding Roommate Crazy Party Oops Neighbors Prank Vacation Buddy Blunder Dad "
        "Slacker Banana Goofball Mixup Road Trip Hangover Sitcom Punchline Spoof Jester "
        "Hiccup Fiasco",
    ),
    (
        "Crime",
        10.0,
        "Heist Gangster Mob Cartel Vault Alibi Detective Precinct Hustle Racket Getaway "
        "Informant Bootleg Parole Syndicate Ransom Smuggler Underworld Wiretap Mugshot "
        "Verdict Kingpin Con Fence",
    ),
    (
        "Documentary",
        7.0,
        "Planet Ocean Nature Wildlife Climate History Inside Portrait Truth Science Coral "
        "Migration Factory Archive Witness Census Harvest Glacier Rainforest Reef "
        "Investigation Interview Footage Evidence",
    ),
    (
        "Drama",
        9.0,
        "Family Silence Letters Winter Memory Promise Daughter Mother Grief Return "
        "Shadows Garden Farewell Secrets Homecoming Bridge Inheritance Confession Orchard "
        "Harbor Widow Verdict Lantern Tides",
    ),
    (
        "Fantasy",
        12.0,
        "Sorcerer Kingdom Elven Crown Wizard Enchanted Throne Prophecy Realm Spell "
        "Unicorn Amulet Griffin Citadel Rune Oracle Wyvern Sceptre Faerie Goblin Warlock "
        "Chalice Mistwood Talisman",
    ),
    (
        "Horror",
        8.0,
        "Haunting Blood Cabin Curse Scream Zombie Possession Crypt Night Ghoul Asylum "
        "Ritual Coffin Demon Nightmare Phantom Cellar Slasher Specter Graveyard Hex Bones "
        "Fog Omen",
    ),
    (
        "Musical",
        10.0,
        "Melody Broadway Dance Song Rhythm Jazz Ballad Serenade Chorus Tango Stage Encore "
        "Harmony Swing Overture Rhapsody Cabaret Waltz Tapdance Sonata Choir Opera "
        "Spotlight Duet",
    ),
    (
        "Mystery",
        9.0,
        "Clue Riddle Manor Vanishing Puzzle Cipher Enigma Suspect Locked Room Inspector "
        "Poison Butler Footprints Masquerade Whodunit Labyrinth Alibi Candlestick Keyhole "
        "Sleuth Monocle Cryptogram Attic",
    ),
    (
        "Romance",
        8.0,
        "Love Kiss Heart Sweetheart Valentine Paris Summer Moonlight Darling Wedding "
        "Letters Rose Serenade Crush Honeymoon Sunset Bouquet Promise Embrace Blush "
        "Tender Devotion Chance Meadow",
    ),
    (
        "Sci-Fi",
        13.0,
        "Galaxy Android Orbit Nebula Quantum Starship Cyborg Mars Colony Warp Clone Alien "
        "Asteroid Matrix Reactor Teleport Drone Singularity Hologram Wormhole Photon "
        "Mutant Outpost Eclipse",
    ),
    (
        "Thriller",
        10.0,
        "Conspiracy Hostage Pursuit Panic Deadline Stalker Agent Ticking Trap Witness "
        "Sabotage Paranoia Blackout Abduction Countdown Cover Double Betrayal Safehouse "
        "Decoy Intercept Fugitive Standoff Ultimatum",
    ),
    (
        "War",
        11.0,
        "Battalion Trench Platoon Sniper Bunker Front Regiment Dogfight Beachhead "
        "Artillery Convoy Submarine Infantry Armistice Garrison Frontline Squadron Ambush "
        "Medal Brigade Siege Paratrooper Flank Barracks",
    ),
    (
        "Western",
        9.0,
        "Outlaw Sheriff Saloon Stagecoach Gunslinger Rodeo Ranch Desert Posse Bounty "
        "Cattle Mesa Prairie Marshal Canyon Revolver Frontier Mustang Dusty Spur Lasso "
        "Tumbleweed Homestead Wagon",
    ),
    (
        "Sports",
        9.0,
        "Champion Victory Coach League Stadium Rookie Knockout Playoff Marathon Underdog "
        "Touchdown Slam Dunk Relay Derby Overtime Pitcher Goal Racket Ringside Trophy "
        "Sprint Locker Season",
    ),
    (
        "Family",
        8.0,
        "Holiday Christmas Grandpa Dog Backyard Treehouse Camp Picnic Snow Pony Sleepover "
        "Birthday Cousins Lemonade Kite Pancake Sneakers Bicycle Scout Nanny Cottage "
        "Puppy Sandcastle Snowman",
    ),
    (
        "History",
        11.0,
        "Empire Dynasty Revolution Pharaoh Emperor Crusade Viking Samurai Colonial "
        "Monarch Legion Senate Rebellion Chronicle Pilgrim Cathedral Renaissance Treaty "
        "Conquest Medieval Victorian Tsar Gladiator Abbey",
    ),
    (
        "Noir",
        10.0,
        "Midnight Smoke Rain Neon Dame Shadow Gumshoe Cigarette Alley Fedora Whiskey "
        "Dockside Streetlight Venetian Blinds Trenchcoat Nightclub Saxophone Bourbon "
        "Double Cross Downtown Sedan Lipstick",
    ),
)

# Event type -> share of events on an item of a preferred topic, and on any other.
PREFERRED_TYPES: dict[str, float] = {
    "view": 0.45,
    "click": 0.25,
    "add_to_cart": 0.10,
    "purchase": 0.12,
    "rating": 0.08,
}
OTHER_TYPES: dict[str, float] = {
    "view": 0.62,
    "click": 0.24,
    "add_to_cart": 0.05,
    "purchase": 0.04,
    "rating": 0.05,
}

_KINDS = tuple(PREFERRED_TYPES)
_TYPE_CUM = {
    True: tuple(accumulate(PREFERRED_TYPES[k] for k in _KINDS)),
    False: tuple(accumulate(OTHER_TYPES[k] for k in _KINDS)),
}
T = TypeVar("T")


class SyntheticConfig(BaseModel):
    """What to generate and the knobs of the behaviour model (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    events: int = Field(1_000_000, ge=1, description="Events to write (exactly).")
    items: int = Field(20_000, ge=2, description="Items in the catalogue.")
    users: int | None = Field(
        None,
        ge=1,
        description="Users; by default one per 30 events (a mean of 30 each, with a long tail).",
    )
    seed: int = Field(0, description="Seed of every draw; same configuration, same bytes.")
    zipf: float = Field(
        1.0, ge=0.0, le=3.0, description="Popularity exponent: rank r has weight r ** -zipf."
    )
    topics: int = Field(
        len(TOPICS), ge=1, le=len(TOPICS), description="Topics (genres) the items fall into."
    )
    cluster_size: int = Field(8, ge=1, description="Mean items per cluster of related items.")
    days: float = Field(
        180.0, gt=0, description="Days over which users start, and end, their activity."
    )
    session_mean: float = Field(6.0, ge=1.0, description="Mean events per session.")
    min_user_events: int = Field(
        3,
        ge=1,
        description="Fewest events per user (3 gives each a train, a valid and a test case).",
    )
    user_sigma: float = Field(
        1.0, ge=0.0, description="Log-normal sigma of users' activity (the tail's weight)."
    )
    related: float = Field(
        0.35, ge=0.0, le=1.0, description="P(next item from the previous item's cluster)."
    )
    same_topic: float = Field(
        0.45, ge=0.0, le=1.0, description="P(next item from the session's topic)."
    )
    explore: float = Field(
        0.1, ge=0.0, le=1.0, description="P(a session starts on a topic the user does not prefer)."
    )
    drift: float = Field(
        0.1, ge=0.0, le=1.0, description="P(the session's topic moves on) per event."
    )

    @model_validator(mode="after")
    def _consistent(self) -> SyntheticConfig:
        if self.related + self.same_topic > 1.0:
            raise ValueError("related + same_topic must be at most 1")
        users = self.user_count()
        if users * self.min_user_events > self.events:
            raise ValueError(
                f"{users} users with at least {self.min_user_events} events each need "
                f"{users * self.min_user_events} events, more than {self.events}"
            )
        if self.events > users * self.max_user_events():
            raise ValueError(
                f"{self.events} events do not fit {users} users touching at most "
                f"{self.max_user_events()} items each (half the catalogue)"
            )
        return self

    def user_count(self) -> int:
        """Users to generate: ``users``, or one per ``EVENTS_PER_USER`` events."""
        return self.users if self.users is not None else max(1, self.events // EVENTS_PER_USER)

    def max_user_events(self) -> int:
        """Most events one user gets: half the catalogue (a user touches an item once)."""
        return max(1, self.items // 2)


@dataclass(frozen=True)
class Catalogue:
    """Items with the tables the event draws read.

    Items are named by row (their index in ``items``); a ``*_cum`` table holds
    the running sums of the popularity weights of the rows beside it.
    """

    items: tuple[Item, ...]
    topic_of: tuple[int, ...]
    cluster_of: tuple[int, ...]
    topic_items: tuple[tuple[int, ...], ...]
    topic_cum: tuple[tuple[float, ...], ...]
    cluster_items: tuple[tuple[int, ...], ...]
    cluster_cum: tuple[tuple[float, ...], ...]
    all_cum: tuple[float, ...]
    topic_cum_all: tuple[float, ...]
    """Running sums of the topics' total weights: how users' topics are drawn."""


@dataclass(frozen=True)
class Generated:
    """Where the files went and how many records each holds."""

    events_path: Path
    items_path: Path
    events: int
    items: int
    users: int


def _rng(seed: int, part: str) -> random.Random:
    # A string seed is hashed with SHA-512, never Python's salted hash.
    return random.Random(f"recprice-synthetic:{seed}:{part}")


def _pick(rng: random.Random, members: Sequence[T], cum: Sequence[float]) -> T:
    """Draw one member, weighted by the increments of ``cum`` (its running sums)."""
    return members[bisect_right(cum, rng.random() * cum[-1], hi=len(cum) - 1)]


def _description(
    rng: random.Random, topic: int, second: int | None, vocab: Sequence[tuple[str, ...]]
) -> str:
    name = TOPICS[topic][0].lower()
    words = [w.lower() for w in rng.sample(vocab[topic], 4)]
    article = "An" if name[0] in "aeiou" else "A"
    text = f"{article} {name} story of {words[0]}, {words[1]}, {words[2]} and {words[3]}."
    if second is not None:
        extra = [w.lower() for w in rng.sample(vocab[second], 2)]
        text += f" With {TOPICS[second][0].lower()}: {extra[0]} and {extra[1]}."
    return text


def build_catalogue(config: SyntheticConfig) -> Catalogue:
    """Items, their topics, clusters and popularity weights (pure in ``config``)."""
    rng = _rng(config.seed, "items")
    n_topics = config.topics
    vocab = [tuple(TOPICS[t][2].split()) for t in range(n_topics)]
    topic_of = [rng.randrange(n_topics) for _ in range(config.items)]
    ranks = list(range(1, config.items + 1))
    rng.shuffle(ranks)
    weights = tuple(r**-config.zipf for r in ranks)

    members: list[list[int]] = [[] for _ in range(n_topics)]
    for row, topic in enumerate(topic_of):
        members[topic].append(row)
    cluster_of = [0] * config.items
    clusters: list[list[int]] = []
    cluster_names: list[str] = []
    cluster_years: list[int] = []
    for topic, rows in enumerate(members):
        pairs = [(a, b) for a in vocab[topic] for b in vocab[topic] if a != b]
        rng.shuffle(pairs)
        count = max(1, round(len(rows) / config.cluster_size))
        for k in range(count):
            a, b = pairs[k % len(pairs)]
            cluster_names.append(f"{a} {b}")
            cluster_years.append(rng.randint(1950, 2015))
            clusters.append([])
        first = len(clusters) - count
        for row in rows:
            cluster = first + rng.randrange(count)
            cluster_of[row] = cluster
            clusters[cluster].append(row)

    items = []
    sequel = [0] * len(clusters)
    for row in range(config.items):
        topic, cluster = topic_of[row], cluster_of[row]
        name, median_price, _ = TOPICS[topic]
        second = rng.randrange(n_topics) if n_topics > 1 and rng.random() < 0.4 else None
        if second == topic:
            second = None
        # A cluster's later items are sequels: a year or more on, a topic word added.
        year = min(cluster_years[cluster], LAST_YEAR)
        cluster_years[cluster] += rng.randint(1, 3)
        sequel[cluster] += 1
        suffix = "" if sequel[cluster] == 1 else f" {rng.choice(vocab[topic])}"
        price = round(min(max(median_price * rng.lognormvariate(0.0, 0.35), 0.99), 999.0), 2)
        genres = name if second is None else f"{name}, {TOPICS[second][0]}"
        items.append(
            Item(
                item_id=str(row + 1),
                title=f"{cluster_names[cluster]}{suffix} ({year})",
                category=name,
                base_price=price,
                description=_description(rng, topic, second, vocab),
                attributes=(("genres", genres), ("year", str(year))),
                floor=round(price * 0.7, 2),
                ceiling=round(price * 1.3, 2),
            )
        )

    def cum(rows: Sequence[int]) -> tuple[float, ...]:
        return tuple(accumulate(weights[r] for r in rows))

    return Catalogue(
        items=tuple(items),
        topic_of=tuple(topic_of),
        cluster_of=tuple(cluster_of),
        topic_items=tuple(tuple(rows) for rows in members),
        topic_cum=tuple(cum(rows) if rows else (0.0,) for rows in members),
        cluster_items=tuple(tuple(rows) for rows in clusters),
        cluster_cum=tuple(cum(rows) for rows in clusters),
        all_cum=cum(range(config.items)),
        topic_cum_all=tuple(accumulate(sum(weights[r] for r in rows) for rows in members)),
    )


def user_budgets(config: SyntheticConfig, rng: random.Random) -> list[int]:
    """Events per user: ``min_user_events`` plus a log-normal share, summing to ``events``."""
    users, cap = config.user_count(), config.max_user_events()
    budgets = [config.min_user_events] * users
    left = config.events - users * config.min_user_events
    shares = [rng.lognormvariate(0.0, config.user_sigma) for _ in range(users)]
    while left > 0:
        open_users = [u for u in range(users) if budgets[u] < cap]
        total = sum(shares[u] for u in open_users)
        given = 0
        for u in open_users:
            extra = min(int(left * shares[u] / total), cap - budgets[u])
            budgets[u] += extra
            given += extra
        left -= given
        # Rounding leaves a remainder: one more event each to the heaviest open users.
        for u in sorted(open_users, key=lambda u: -shares[u]):
            if left == 0:
                break
            if budgets[u] < cap:
                budgets[u] += 1
                left -= 1
    return budgets


class _User:
    """One user's taste and where they are in their log."""

    __slots__ = ("budget", "end_ms", "last", "prefs", "pref_cum", "seen", "topic")

    def __init__(self, budget: int, prefs: list[int], pref_cum: list[float], end_ms: int) -> None:
        self.budget = budget
        self.prefs = prefs
        self.pref_cum = pref_cum
        self.end_ms = end_ms  # where the user's sessions should end
        self.seen = array("i")
        self.last = -1
        self.topic = -1  # the session's topic; -1 before the session's first event


def _next_item(
    rng: random.Random, user: _User, cat: Catalogue, config: SyntheticConfig, n_topics: int
) -> int:
    starting = user.topic < 0
    if starting or rng.random() < config.drift:
        if rng.random() < config.explore:
            user.topic = _pick(rng, range(n_topics), cat.topic_cum_all)
        else:
            user.topic = _pick(rng, user.prefs, user.pref_cum)
    for _ in range(20):
        draw = rng.random()
        if not starting and user.last >= 0 and draw < config.related:
            cluster = cat.cluster_of[user.last]
            row = _pick(rng, cat.cluster_items[cluster], cat.cluster_cum[cluster])
        elif draw < config.related + config.same_topic and cat.topic_items[user.topic]:
            row = _pick(rng, cat.topic_items[user.topic], cat.topic_cum[user.topic])
        else:
            row = _pick(rng, range(len(cat.items)), cat.all_cum)
        if row not in user.seen:
            return row
    # A heavy user has taken the likely items: any unseen item (at least half are).
    while True:
        row = rng.randrange(len(cat.items))
        if row not in user.seen:
            return row


def _event(rng: random.Random, n: int, user_id: str, item: Item, ts: int, preferred: bool) -> Event:
    kind = _pick(rng, _KINDS, _TYPE_CUM[preferred])
    price = quantity = rating = None
    if kind in ("add_to_cart", "purchase"):
        assert item.floor is not None and item.ceiling is not None
        price = round(
            min(max(item.base_price * rng.uniform(0.85, 1.15), item.floor), item.ceiling), 2
        )
        if kind == "purchase":
            quantity = 1 if rng.random() < 0.9 else rng.randint(2, 3)
    elif kind == "rating":
        mean = 4.0 if preferred else 2.8
        rating = float(min(max(round(rng.gauss(mean, 0.9)), 1), 5))
    return Event(
        event_id=f"syn-{n}",
        type=kind,
        user_id=user_id,
        item_id=item.item_id,
        ts=ts,
        price=price,
        quantity=quantity,
        rating=rating,
    )


def generate_events(config: SyntheticConfig, cat: Catalogue) -> Iterator[Event]:
    """Yield the log's events in time order (ties by user), one user state each in memory."""
    rng = _rng(config.seed, "users")
    n_topics = len(cat.topic_items)
    span_ms = config.days * DAY_MS
    users: list[_User] = []
    heap: list[tuple[int, int]] = []
    for uid, budget in enumerate(user_budgets(config, rng)):
        prefs: list[int] = []
        for _ in range(rng.choice((1, 2, 2, 3))):
            topic = _pick(rng, range(n_topics), cat.topic_cum_all)
            if topic not in prefs:
                prefs.append(topic)
        pref_cum = list(accumulate(rng.uniform(0.5, 1.5) for _ in prefs))
        start = START_MS + int(rng.random() * span_ms)
        end = start + int((START_MS + span_ms - start) * rng.uniform(0.3, 1.0))
        users.append(_User(budget, prefs, pref_cum, end))
        heap.append((start, uid))
    heapq.heapify(heap)
    stay = 1.0 - 1.0 / config.session_mean
    n = 0
    while heap:
        ts, uid = heapq.heappop(heap)
        user = users[uid]
        row = _next_item(rng, user, cat, config, n_topics)
        user.seen.append(row)
        user.last = row
        user.budget -= 1
        n += 1
        preferred = cat.topic_of[row] in user.prefs
        yield _event(rng, n, str(uid + 1), cat.items[row], ts, preferred)
        if user.budget == 0:
            user.seen = array("i")
            continue
        if rng.random() < stay:
            step = min(rng.lognormvariate(math.log(40_000.0), 1.0), 20 * 60_000.0)
        else:
            # Spread the sessions left over the time left (gaps shrink as the user's end
            # nears), never past that end by more than an hour a session.
            user.topic = -1
            time_left = max(user.end_ms - ts, 0)
            mean_gap = time_left / (user.budget / config.session_mean + 1.0)
            step = HOUR_MS + (min(rng.expovariate(1.0 / mean_gap), time_left) if mean_gap else 0)
        heapq.heappush(heap, (ts + max(1, int(step)), uid))


def generate(out: Path, config: SyntheticConfig) -> Generated:
    """Write ``items.jsonl`` and ``events.jsonl`` under ``out``, streaming the events."""
    out.mkdir(parents=True, exist_ok=True)
    cat = build_catalogue(config)
    items_path, events_path = out / "items.jsonl", out / "events.jsonl"
    items_path.write_bytes(b"".join(item.to_json() + b"\n" for item in cat.items))
    written = 0
    with events_path.open("wb") as handle:
        chunk: list[bytes] = []
        for event in generate_events(config, cat):
            chunk.append(event.to_json() + b"\n")
            if len(chunk) == 65_536:
                handle.write(b"".join(chunk))
                written += len(chunk)
                chunk = []
        handle.write(b"".join(chunk))
        written += len(chunk)
    return Generated(events_path, items_path, written, len(cat.items), config.user_count())
