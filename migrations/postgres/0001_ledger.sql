-- The ledger: one append-only, hash-chained table of events.
create table events (
    position        bigint  primary key,
    stream_id       text    not null,
    stream_version  bigint  not null,
    event_type      text    not null,
    event_version   bigint  not null,
    payload         text    not null,
    metadata        text    not null,
    recorded_at     text    not null,
    prev_hash       text    not null,
    hash            text    not null,
    -- The optimistic-concurrency backstop; the append path matches its name.
    constraint events_stream_version_key unique (stream_id, stream_version)
);
create index events_type_idx on events (event_type);

create function events_reject_change() returns trigger language plpgsql as $$
begin
    raise exception 'events are immutable: % rejected', tg_op;
end;
$$;

create trigger events_reject_update before update on events
    for each row execute function events_reject_change();
create trigger events_reject_delete before delete on events
    for each row execute function events_reject_change();
create trigger events_reject_truncate before truncate on events
    for each statement execute function events_reject_change();

-- The head of the chain; its row lock is the ledger's one-writer-at-a-time lock.
create table ledger_head (
    id        integer primary key check (id = 1),
    position  bigint  not null,
    hash      text    not null
);
insert into ledger_head (id, position, hash)
values (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Encrypted integration credentials, one row per version; never in the event log.
create table integration_secrets (
    integration_id  bigint not null,
    version         bigint not null,
    key_id          text   not null,
    nonce           bytea  not null,
    ciphertext      bytea  not null,
    primary key (integration_id, version)
);

create table projection_checkpoints (
    name      text   primary key,
    position  bigint not null,
    version   bigint not null
);
