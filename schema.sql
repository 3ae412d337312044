-- omnihub: the whole schema, in one place.
--
-- The file is a list of versioned migrations. Each starts with a line
-- "-- migration N: title" and runs once, in its own transaction, in order
-- (hub/migrate.py). Never edit a migration that has shipped: add a new one.

-- migration 1: core store
CREATE TABLE agents (
    id            bigserial PRIMARY KEY,
    email         text NOT NULL,
    name          text NOT NULL,
    role          text NOT NULL CHECK (role IN ('agent', 'manager', 'admin')),
    password_hash text NOT NULL,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX agents_email_key ON agents (lower(email));

-- Login sessions and API tokens; only a hash of the token is stored.
CREATE TABLE sessions (
    token_hash  bytea PRIMARY KEY,
    agent_id    bigint NOT NULL REFERENCES agents ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

CREATE TABLE channels (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('telegram', 'vk', 'email', 'widget', 'loopback')),
    name          text NOT NULL UNIQUE,
    settings      jsonb NOT NULL DEFAULT '{}',
    secrets       jsonb NOT NULL DEFAULT '{}',  -- never returned by the API
    enabled       boolean NOT NULL DEFAULT true,
    last_error    text,
    last_error_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Telegram update offset, VK long-poll ts, IMAP UIDVALIDITY+UID: advanced in
-- the same transaction as the messages they cover.
CREATE TABLE channel_cursors (
    channel_id bigint NOT NULL REFERENCES channels ON DELETE CASCADE,
    key        text NOT NULL,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, key)
);

-- The client card: one per person, across channels.
CREATE TABLE clients (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL DEFAULT '',
    email       text NOT NULL DEFAULT '',
    phone       text NOT NULL DEFAULT '',
    merged_into bigint REFERENCES clients,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX clients_name_idx ON clients (lower(name) text_pattern_ops);
CREATE INDEX clients_email_idx ON clients (lower(email)) WHERE email <> '';

-- A sender on one channel (Telegram user, VK user, e-mail address, widget visitor).
CREATE TABLE identities (
    id           bigserial PRIMARY KEY,
    channel_id   bigint NOT NULL REFERENCES channels,
    external_id  text NOT NULL,
    client_id    bigint NOT NULL REFERENCES clients,
    display_name text NOT NULL DEFAULT '',
    username     text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel_id, external_id)
);
CREATE INDEX identities_client_idx ON identities (client_id);

CREATE TABLE conversations (
    id               bigserial PRIMARY KEY,
    client_id        bigint NOT NULL REFERENCES clients,
    channel_id       bigint NOT NULL REFERENCES channels,
    identity_id      bigint NOT NULL REFERENCES identities,
    subject          text NOT NULL DEFAULT '',
    status           text NOT NULL DEFAULT 'open'
                     CHECK (status IN ('open', 'pending', 'resolved', 'snoozed')),
    snoozed_until    timestamptz,
    assignee_id      bigint REFERENCES agents,
    unread_count     integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    first_response_at timestamptz,
    resolved_at      timestamptz
);
CREATE INDEX conversations_activity_idx ON conversations (last_activity_at DESC, id DESC);
CREATE INDEX conversations_identity_idx ON conversations (identity_id, id DESC);
CREATE INDEX conversations_client_idx ON conversations (client_id, id DESC);
CREATE INDEX conversations_assignee_idx ON conversations (assignee_id, last_activity_at DESC);

CREATE TABLE messages (
    id              bigserial PRIMARY KEY,
    conversation_id bigint NOT NULL REFERENCES conversations,
    channel_id      bigint NOT NULL REFERENCES channels,
    external_id     text,  -- the channel's id; NULL for a reply not yet sent
    direction       text NOT NULL CHECK (direction IN ('in', 'out')),
    author_agent_id bigint REFERENCES agents,
    text            text NOT NULL DEFAULT '',
    html            text NOT NULL DEFAULT '',
    attachments     jsonb NOT NULL DEFAULT '[]',
    flags           text[] NOT NULL DEFAULT '{}',
    status          text NOT NULL
                    CHECK (status IN ('received', 'queued', 'sent', 'delivered', 'failed')),
    error           text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    edited_at       timestamptz,
    search          tsvector GENERATED ALWAYS AS (
                        to_tsvector('english'::regconfig, left(text, 100000))
                        || to_tsvector('russian'::regconfig, left(text, 100000))
                    ) STORED,
    UNIQUE (channel_id, external_id)
);
CREATE INDEX messages_conversation_idx ON messages (conversation_id, id);
CREATE INDEX messages_search_idx ON messages USING gin (search);

-- Private notes: never sent to the customer.
CREATE TABLE notes (
    id              bigserial PRIMARY KEY,
    conversation_id bigint REFERENCES conversations,
    client_id       bigint NOT NULL REFERENCES clients,
    author_agent_id bigint NOT NULL REFERENCES agents,
    text            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notes_conversation_idx ON notes (conversation_id, id);

-- The event log: every live event, stored so a websocket resumes from its
-- last id, and the client card's timeline. See docs/events.md.
CREATE TABLE events (
    id              bigserial PRIMARY KEY,
    type            text NOT NULL,
    client_id       bigint,
    conversation_id bigint,
    actor_agent_id  bigint,
    payload         jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_client_idx ON events (client_id, id);

-- Replies waiting for their channel. A row lives until the message is sent
-- or has failed for good.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    message_id      bigint NOT NULL UNIQUE REFERENCES messages,
    channel_id      bigint NOT NULL REFERENCES channels,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,
    last_error      text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at);

-- Attachments, keyed by content hash, visible to every hub process.
CREATE TABLE blobs (
    sha256       text PRIMARY KEY,
    size         bigint NOT NULL,
    content_type text NOT NULL,
    data         bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Input we could not turn into a message: kept with the reason, never dropped.
CREATE TABLE raw_inbound (
    id         bigserial PRIMARY KEY,
    channel_id bigint NOT NULL REFERENCES channels ON DELETE CASCADE,
    kind       text NOT NULL,
    reason     text NOT NULL,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- migration 2: client segment and tags (VIP and other service rules)
ALTER TABLE clients
    ADD COLUMN segment text NOT NULL DEFAULT '',
    ADD COLUMN tags    text[] NOT NULL DEFAULT '{}';
CREATE INDEX clients_tags_idx ON clients USING gin (tags);

-- migration 3: client history (merge records and undo, merge suggestions, card fields, note search, audit log)
ALTER TABLE clients
    ADD COLUMN custom_fields jsonb NOT NULL DEFAULT '{}',
    -- Where the person first came from: {channel_id, channel, start_payload | page | ref, at}.
    ADD COLUMN first_touch   jsonb NOT NULL DEFAULT '{}';
CREATE INDEX clients_merged_into_idx ON clients (merged_into) WHERE merged_into IS NOT NULL;

-- Weak evidence compares phones by their last ten digits (+7 999… and 8 999… match).
CREATE FUNCTION phone_key(phone text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN right(regexp_replace(phone, '\D', '', 'g'), 10);
CREATE INDEX clients_name_phone_idx ON clients (lower(btrim(name)), phone_key(phone)) WHERE phone <> '';

-- The live card a client id leads to, following merged_into.
CREATE FUNCTION client_root(client bigint) RETURNS bigint LANGUAGE sql STABLE AS $$
    WITH RECURSIVE chain (id, next, depth) AS (
        SELECT id, merged_into, 0 FROM clients WHERE id = client
        UNION ALL
        SELECT c.id, c.merged_into, chain.depth + 1 FROM clients c JOIN chain ON c.id = chain.next
        WHERE chain.depth < 1000
    )
    SELECT id FROM chain WHERE next IS NULL
$$;

-- One row per merge; client_merge_moves lists exactly the rows it moved, so
-- an undo moves those (and what has since grown on them) back.
CREATE TABLE client_merges (
    id              bigserial PRIMARY KEY,
    survivor_id     bigint NOT NULL REFERENCES clients,
    merged_id       bigint NOT NULL REFERENCES clients,
    survivor_before jsonb NOT NULL DEFAULT '{}',  -- card fields the merge changed, as they were
    survivor_after  jsonb NOT NULL DEFAULT '{}',  -- and as the merge left them
    merged_by       bigint REFERENCES agents,     -- NULL: automatic (a widget visitor gave a known e-mail)
    merged_at       timestamptz NOT NULL DEFAULT now(),
    undone_by       bigint REFERENCES agents,
    undone_at       timestamptz,
    CHECK (survivor_id <> merged_id)
);
CREATE INDEX client_merges_survivor_idx ON client_merges (survivor_id, id);
CREATE INDEX client_merges_merged_idx ON client_merges (merged_id, id);

CREATE TABLE client_merge_moves (
    merge_id bigint NOT NULL REFERENCES client_merges ON DELETE CASCADE,
    kind     text NOT NULL CHECK (kind IN ('identity', 'conversation', 'note', 'event')),
    row_id   bigint NOT NULL,
    PRIMARY KEY (merge_id, kind, row_id)
);

CREATE TABLE merge_suggestions (
    id         bigserial PRIMARY KEY,
    client_id  bigint NOT NULL REFERENCES clients,  -- the lower id of the pair
    other_id   bigint NOT NULL REFERENCES clients,
    reason     text NOT NULL CHECK (reason IN ('same_name_and_phone', 'email_in_message')),
    evidence   jsonb NOT NULL DEFAULT '{}',
    status     text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'confirmed', 'dismissed')),
    merge_id   bigint REFERENCES client_merges,
    decided_by bigint REFERENCES agents,
    decided_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (client_id < other_id),
    UNIQUE (client_id, other_id, reason)
);
CREATE INDEX merge_suggestions_pending_idx ON merge_suggestions (id) WHERE status = 'pending';
CREATE INDEX merge_suggestions_other_idx ON merge_suggestions (other_id);

-- Notes are searched like messages (managers' history review).
ALTER TABLE notes ADD COLUMN search tsvector GENERATED ALWAYS AS (
    to_tsvector('english'::regconfig, left(text, 100000)) || to_tsvector('russian'::regconfig, left(text, 100000))
) STORED;
CREATE INDEX notes_search_idx ON notes USING gin (search);
CREATE INDEX notes_client_idx ON notes (client_id, id);

-- Who did what: reads, replies, assignments, merges, exports. Written in the
-- transaction of the action it records; readable by managers and admins.
CREATE TABLE audit_log (
    id              bigserial PRIMARY KEY,
    agent_id        bigint REFERENCES agents,
    action          text NOT NULL,
    conversation_id bigint,
    client_id       bigint,
    details         jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_agent_idx ON audit_log (agent_id, id);
CREATE INDEX audit_log_conversation_idx ON audit_log (conversation_id, id) WHERE conversation_id IS NOT NULL;
CREATE INDEX audit_log_created_idx ON audit_log (created_at);

-- migration 4: routing (teams, presence, queue, auto-assignment) and SLA regulations
-- Weekly opening hours in a time zone; SLA clocks only run inside them.
-- schedule: {"mon": [["09:00", "18:00"]], ...}; holidays: local dates with no hours.
CREATE TABLE business_hours (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    time_zone  text NOT NULL,
    schedule   jsonb NOT NULL,
    holidays   date[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE teams (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    auto_assign boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE team_members (
    team_id  bigint NOT NULL REFERENCES teams ON DELETE CASCADE,
    agent_id bigint NOT NULL REFERENCES agents ON DELETE CASCADE,
    PRIMARY KEY (team_id, agent_id)
);
CREATE INDEX team_members_agent_idx ON team_members (agent_id);

-- A channel's new conversations go to one team.
CREATE TABLE team_channels (
    channel_id bigint PRIMARY KEY REFERENCES channels ON DELETE CASCADE,
    team_id    bigint NOT NULL REFERENCES teams ON DELETE CASCADE
);

-- One row per hub-wide routing setting set (always id 1).
CREATE TABLE routing_settings (
    id                    integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    offline_grace_seconds integer NOT NULL DEFAULT 120 CHECK (offline_grace_seconds >= 0),
    return_on_offline     boolean NOT NULL DEFAULT true,
    default_capacity      integer NOT NULL DEFAULT 5 CHECK (default_capacity >= 0)
);
INSERT INTO routing_settings DEFAULT VALUES;

-- An agent as routing sees them. The row is also the lock auto-assignment
-- takes (FOR UPDATE SKIP LOCKED) so no process pushes an agent over capacity.
CREATE SEQUENCE routing_turn_seq;
CREATE TABLE routing_agents (
    agent_id          bigint PRIMARY KEY REFERENCES agents ON DELETE CASCADE,
    status            text NOT NULL DEFAULT 'offline' CHECK (status IN ('online', 'away', 'offline')),
    status_changed_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at      timestamptz NOT NULL DEFAULT now(),
    capacity          integer CHECK (capacity >= 0),  -- NULL: routing_settings.default_capacity
    last_turn         bigint NOT NULL DEFAULT 0       -- round-robin: the lowest turn goes next
);

-- Open /ws/agent connections, per hub process, kept alive by a heartbeat;
-- a process that dies leaves rows whose heartbeat goes stale.
CREATE TABLE agent_connections (
    id           bigserial PRIMARY KEY,
    agent_id     bigint NOT NULL REFERENCES agents ON DELETE CASCADE,
    process_id   text NOT NULL,
    status       text NOT NULL DEFAULT 'online' CHECK (status IN ('online', 'away')),
    connected_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_connections_agent_idx ON agent_connections (agent_id);
CREATE INDEX agent_connections_process_idx ON agent_connections (process_id);

-- A conversation as routing sees it: its team, its place in the queue, its priority
-- (0 normal, 1 high: VIP, 2 urgent: an SLA was breached).
CREATE TABLE conversation_routing (
    conversation_id bigint PRIMARY KEY REFERENCES conversations ON DELETE CASCADE,
    team_id         bigint REFERENCES teams ON DELETE SET NULL,
    queued_at       timestamptz NOT NULL,
    priority        smallint NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 2)
);
CREATE INDEX conversation_routing_team_idx ON conversation_routing (team_id, priority DESC, queued_at);
CREATE INDEX conversations_unassigned_open_idx ON conversations (id) WHERE assignee_id IS NULL AND status = 'open';

-- Targets per team and client segment ('' / NULL: any). Seconds of business time.
CREATE TABLE sla_policies (
    id                     bigserial PRIMARY KEY,
    name                   text NOT NULL UNIQUE,
    team_id                bigint REFERENCES teams ON DELETE CASCADE,
    segment                text NOT NULL DEFAULT '',
    first_response_seconds integer CHECK (first_response_seconds > 0),
    next_response_seconds  integer CHECK (next_response_seconds > 0),
    resolution_seconds     integer CHECK (resolution_seconds > 0),
    business_hours_id      bigint REFERENCES business_hours ON DELETE SET NULL,
    created_at             timestamptz NOT NULL DEFAULT now()
);

-- A running or finished SLA clock: one per conversation and metric; a new
-- waiting period (next_response) restarts it.
CREATE TABLE sla_clocks (
    conversation_id bigint NOT NULL REFERENCES conversations ON DELETE CASCADE,
    metric          text NOT NULL CHECK (metric IN ('first_response', 'next_response', 'resolution')),
    policy_id       bigint REFERENCES sla_policies ON DELETE SET NULL,
    started_at      timestamptz NOT NULL,
    due_at          timestamptz NOT NULL,
    stopped_at      timestamptz,
    breached_at     timestamptz,
    PRIMARY KEY (conversation_id, metric)
);
CREATE INDEX sla_clocks_due_idx ON sla_clocks (due_at) WHERE stopped_at IS NULL AND breached_at IS NULL;

-- Every breach, for reports (the sla.breached event tells the live inbox).
CREATE TABLE sla_breaches (
    id              bigserial PRIMARY KEY,
    conversation_id bigint NOT NULL REFERENCES conversations ON DELETE CASCADE,
    metric          text NOT NULL,
    policy_id       bigint REFERENCES sla_policies ON DELETE SET NULL,
    team_id         bigint REFERENCES teams ON DELETE SET NULL,
    assignee_id     bigint REFERENCES agents,
    started_at      timestamptz NOT NULL,
    due_at          timestamptz NOT NULL,
    breached_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (conversation_id, metric, started_at)
);
CREATE INDEX sla_breaches_at_idx ON sla_breaches (breached_at);

-- "A VIP hears from us every 14 days": clients of the segment (or tag) with no
-- reply from us for that long are due for contact.
CREATE TABLE contact_rules (
    id         bigserial PRIMARY KEY,
    segment    text NOT NULL UNIQUE CHECK (segment <> ''),
    every_days integer NOT NULL CHECK (every_days > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- migration 5: e-mail original text and reply-address lookup, client phone lookup
-- The text as received when `text` shows it folded (e-mail quotes and
-- signatures): kept so an agent can unfold it; '' when nothing was folded.
ALTER TABLE messages ADD COLUMN original_text text NOT NULL DEFAULT '';
-- Ingest links a new identity to the card with the same phone (a shared contact).
CREATE INDEX clients_phone_idx ON clients (phone) WHERE phone <> '';

-- migration 6: SLA clocks pause while a conversation waits on the customer (pending, snoozed) or is resolved
-- Every stretch a conversation spent pending, snoozed or resolved (ended_at NULL: it still is).
-- SLA clocks count only the business time outside these stretches (routing/sla.py). Written
-- by the trigger below, so every path that changes a status (an agent, a snooze running out,
-- a customer writing again) records it in the same transaction, with the same now().
CREATE TABLE conversation_pauses (
    id              bigserial PRIMARY KEY,
    conversation_id bigint NOT NULL REFERENCES conversations ON DELETE CASCADE,
    status          text NOT NULL CHECK (status IN ('pending', 'snoozed', 'resolved')),
    started_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz
);
CREATE INDEX conversation_pauses_conversation_idx ON conversation_pauses (conversation_id, started_at);
CREATE UNIQUE INDEX conversation_pauses_open_idx ON conversation_pauses (conversation_id) WHERE ended_at IS NULL;

CREATE FUNCTION record_conversation_pause() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversation_pauses SET ended_at = now() WHERE conversation_id = NEW.id AND ended_at IS NULL;
    IF NEW.status <> 'open' THEN
        INSERT INTO conversation_pauses (conversation_id, status) VALUES (NEW.id, NEW.status);
    END IF;
    RETURN NULL;
END
$$;
-- The WHEN clauses keep the common UPDATE (a new message, status 'open' again) free of the function call.
CREATE TRIGGER conversation_pause_on_insert AFTER INSERT ON conversations
    FOR EACH ROW WHEN (NEW.status <> 'open') EXECUTE FUNCTION record_conversation_pause();
CREATE TRIGGER conversation_pause_on_status AFTER UPDATE OF status ON conversations
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION record_conversation_pause();

-- Conversations already waiting when this migration runs: from when they were resolved, else from
-- their last activity (usually the reply before "pending"; no scan of the event log).
INSERT INTO conversation_pauses (conversation_id, status, started_at)
SELECT id, status, coalesce(resolved_at, last_activity_at) FROM conversations WHERE status <> 'open';

-- A paused clock is not running: stopped_at is when it paused, paused_at says it will resume
-- (with the business time it had left) when the conversation opens again.
ALTER TABLE sla_clocks ADD COLUMN paused_at timestamptz;

-- migration 7: client-name search by trigram (the inbox `q=` filter and the client list: name ILIKE '%…%')
-- pg_trgm ships with PostgreSQL (contrib) and is a trusted extension: the database owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX clients_name_trgm_idx ON clients USING gin (name gin_trgm_ops);

-- migration 8: messages by time (history search and report periods)
-- History search walks messages newest first when a word is common; reports read one period
-- (volume per day and channel, agents' replies).
CREATE INDEX messages_created_idx ON messages (created_at, id);

-- migration 9: snoozes that ran out are found without reading every conversation (housekeeping, every 10 s)
CREATE INDEX conversations_snoozed_idx ON conversations (snoozed_until) WHERE status = 'snoozed';

-- migration 10: conversations not resolved, by id (routing's catch-up, every 30 s, read all 1 M conversations: ~300 ms)
CREATE INDEX conversations_unresolved_idx ON conversations (id) WHERE status <> 'resolved';
