-- ACME-DE's ERP: the install script of its order audit hand-off (SQL Server)
:setvar Database ERP_DE
USE [$(Database)]
GO
CREATE TRIGGER dbo.trg_order_audit_export ON dbo.order_audit
AFTER INSERT
AS
BEGIN
    SET NOCOUNT ON
    INSERT INTO dbo.order_export_queue (po, queued_at) SELECT po, GETDATE() FROM inserted
    INSERT INTO FINANCE01.Ledger.dbo.OpenOrders (po) SELECT po FROM inserted
END
GO
CREATE PROCEDURE dbo.usp_nightly_credit_mail
AS
    EXEC msdb.dbo.sp_send_dbmail @profile_name = 'ERP', @recipients = 'credit@acme.example', @subject = 'credit report'
GO
CREATE TRIGGER dbo.trg_customer_fax_notify ON dbo.customer
AFTER UPDATE
AS
    INSERT INTO dbo.fax_queue (customer_no, queued_at) SELECT customer_no, GETDATE() FROM inserted
GO
-- Faxed order confirmations stopped when the fax server went; the trigger stayed behind.
DISABLE TRIGGER dbo.trg_customer_fax_notify ON dbo.customer
GO
