-- People's passwords, as Argon2id hashes (PHC strings), one row per user; never in the event
-- log (which records only that a password was set). Like integration_secrets, not a projection:
-- written in the same transaction as the user_password_set event, never rebuilt by replay.
create table user_passwords (
    user_id  bigint not null primary key,
    phc      text   not null,
    set_at   bigint not null
);
