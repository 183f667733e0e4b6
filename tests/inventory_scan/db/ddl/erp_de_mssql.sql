:setvar Database ERP_DE
USE [$(Database)]
GO
/* Message text below mentions create trigger; it is not one. */
PRINT 'Now at the create trigger section ...'
GO
CREATE TRIGGER [Sales].[trg_Orders_Export] ON [Sales].[Orders]
AFTER INSERT, UPDATE
AS
BEGIN
    SET NOCOUNT ON
    INSERT INTO dbo.Orders_Export_Queue (OrderID, Status, QueuedAt)
    SELECT i.OrderID, i.Status, GETDATE() FROM inserted i
    -- push to the warehouse through the linked server
    INSERT INTO WMS01.Warehouse.dbo.InboundOrders (OrderID) SELECT OrderID FROM inserted
    EXEC msdb.dbo.sp_send_dbmail @profile_name = 'ERP', @recipients = 'ops@acme.example', @subject = 'order queued'
    EXEC Sales.usp_RecalcCredit @CustomerID = 1
END
GO
CREATE TRIGGER Sales.trg_Orders_Validate ON Sales.Orders
INSTEAD OF DELETE
AS
IF EXISTS (SELECT 1 FROM deleted d JOIN Sales.Invoices inv ON inv.OrderID = d.OrderID)
BEGIN
    RAISERROR ('Invoiced orders cannot be deleted', 16, 1)
    ROLLBACK TRANSACTION
END
GO
CREATE OR ALTER PROCEDURE Sales.usp_RecalcCredit @CustomerID int
AS
DECLARE @sql nvarchar(max) = N'UPDATE Sales.Customers SET Credit = 0 WHERE CustomerID = @id'
EXEC sp_executesql @sql, N'@id int', @id = @CustomerID
DECLARE @obj int
EXEC sp_OACreate 'MSXML2.ServerXMLHTTP', @obj OUT
EXEC sp_OAMethod @obj, 'open', NULL, 'POST', 'http://crm.acme.local/credit', 'false'
EXEC xp_cmdshell 'bcp Sales.Customers out C:\export\customers.csv -c -T'
GO
DISABLE TRIGGER Sales.trg_Orders_Validate ON Sales.Orders
GO
GRANT EXECUTE ON OBJECT::Sales.usp_RecalcCredit TO erp_app
GO
