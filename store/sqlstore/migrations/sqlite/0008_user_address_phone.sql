-- pixie schema version 8, SQLite: the address and phone claims of users (OIDC Core §5.1).

ALTER TABLE {p}users ADD COLUMN address_formatted TEXT NOT NULL DEFAULT '';
ALTER TABLE {p}users ADD COLUMN address_street TEXT NOT NULL DEFAULT '';
ALTER TABLE {p}users ADD COLUMN address_locality TEXT NOT NULL DEFAULT '';
ALTER TABLE {p}users ADD COLUMN address_region TEXT NOT NULL DEFAULT '';
ALTER TABLE {p}users ADD COLUMN address_postal_code TEXT NOT NULL DEFAULT '';
ALTER TABLE {p}users ADD COLUMN address_country TEXT NOT NULL DEFAULT '';
ALTER TABLE {p}users ADD COLUMN phone_number TEXT NOT NULL DEFAULT '';
ALTER TABLE {p}users ADD COLUMN phone_number_verified INTEGER NOT NULL DEFAULT 0;
