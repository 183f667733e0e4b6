CREATE OR REPLACE TRIGGER erp.trg_invoice_notify
AFTER INSERT OR UPDATE OF status ON erp.invoices
FOR EACH ROW
WHEN (NEW.status = 'POSTED')
DECLARE
  l_req  UTL_HTTP.req;
BEGIN
  INSERT INTO erp.invoice_outbox (invoice_id, payload) VALUES (:NEW.invoice_id, :NEW.status);
  INSERT INTO audit_log@hq_link (what) VALUES ('invoice ' || :NEW.invoice_id);
  l_req := UTL_HTTP.begin_request('http://finance.acme.local/hook', 'POST');
  DBMS_AQ.ENQUEUE(queue_name => 'erp.invoice_q', enqueue_options => NULL, message_properties => NULL, payload => NULL, msgid => NULL);
  erp.billing_pkg.mark_sent(:NEW.invoice_id);
END;
/
CREATE OR REPLACE TRIGGER erp.trg_credit_check
BEFORE INSERT ON erp.orders
FOR EACH ROW
BEGIN
  IF :NEW.amount > 100000 THEN
    RAISE_APPLICATION_ERROR(-20001, 'credit limit exceeded');
  END IF;
END;
/
ALTER TRIGGER erp.trg_credit_check DISABLE;
CREATE OR REPLACE PROCEDURE erp.nightly_export IS
  f UTL_FILE.FILE_TYPE;
BEGIN
  f := UTL_FILE.FOPEN('EXPORT_DIR', 'orders.csv', 'w');
  FOR r IN (SELECT order_id FROM erp.orders) LOOP
    UTL_FILE.PUT_LINE(f, r.order_id);
  END LOOP;
  EXECUTE IMMEDIATE 'TRUNCATE TABLE erp.orders_stage';
  UTL_SMTP.helo(NULL, 'acme.example');
END;
/
