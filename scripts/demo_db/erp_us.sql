-- ACME-US's ERP (SQLite): every order and stock change is copied into export tables a nightly job reads
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, total NUMERIC, status TEXT DEFAULT 'NEW');
CREATE TABLE stock (sku TEXT PRIMARY KEY, on_hand INTEGER NOT NULL);
CREATE TABLE order_export (order_id INTEGER, status TEXT, exported_at TEXT);
CREATE TABLE stock_outbox (sku TEXT, on_hand INTEGER, changed_at TEXT);
CREATE TRIGGER orders_export_ai AFTER INSERT ON orders BEGIN
  INSERT INTO order_export (order_id, status, exported_at) VALUES (NEW.id, NEW.status, datetime('now'));
END;
CREATE TRIGGER orders_export_au AFTER UPDATE OF status ON orders BEGIN
  INSERT INTO order_export (order_id, status, exported_at) VALUES (NEW.id, NEW.status, datetime('now'));
END;
CREATE TRIGGER stock_outbox_au AFTER UPDATE ON stock WHEN NEW.on_hand <> OLD.on_hand BEGIN
  INSERT INTO stock_outbox (sku, on_hand, changed_at) VALUES (NEW.sku, NEW.on_hand, datetime('now'));
END;
CREATE TRIGGER orders_validate_bi BEFORE INSERT ON orders WHEN NEW.total < 0 BEGIN
  SELECT RAISE(ABORT, 'negative order total');
END;
