-- The ledger: one append-only, hash-chained table of events.
create table events (
    position        integer primary key,
    stream_id       text    not null,
    stream_version  integer not null,
    event_type      text    not null,
    event_version   integer not null,
    payload         text    not null,
    metadata        text    not null,
    recorded_at     text    not null,
    prev_hash       text    not null,
    hash            text    not null
);

-- The optimistic-concurrency backstop; the append path matches its name.
create unique index events_stream_version_key on events (stream_id, stream_version);
create index events_type_idx on events (event_type);

create trigger events_reject_update before update on events
begin
    select raise(abort, 'events are immutable: update rejected');
end;

create trigger events_reject_delete before delete on events
begin
    select raise(abort, 'events are immutable: delete rejected');
end;

-- The head of the chain, read and moved by the one writer that holds the lock.
create table ledger_head (
    id        integer primary key check (id = 1),
    position  integer not null,
    hash      text    not null
);
insert into ledger_head (id, position, hash)
values (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Encrypted integration credentials, one row per version; never in the event log.
create table integration_secrets (
    integration_id  integer not null,
    version         integer not null,
    key_id          text    not null,
    nonce           blob    not null,
    ciphertext      blob    not null,
    primary key (integration_id, version)
);

create table projection_checkpoints (
    name      text    primary key,
    position  integer not null,
    version   integer not null
);
