-- The optional delivery address of an order (the domain's ShippingAddress, as JSON).

ALTER TABLE orders ADD COLUMN shipping_address jsonb;
