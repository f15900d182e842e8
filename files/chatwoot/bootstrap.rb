# Managed by the platform deploy (application bootstrap). Run by Chatwoot's own
# `bundle exec rails runner`: the first account and its admin without the sign-up page,
# and the admin's API token. Idempotent: an existing admin (by e-mail) is reused.
# Reads CW_ACCOUNT_NAME, CW_ADMIN_NAME, CW_ADMIN_EMAIL, CW_ADMIN_PASSWORD; prints one
# JSON line: {"account_id": .., "user_id": .., "access_token": ".."}.
email = ENV.fetch('CW_ADMIN_EMAIL')
user = User.find_by(email: email)
if user.nil?
  user = AccountBuilder.new(
    account_name: ENV.fetch('CW_ACCOUNT_NAME'),
    email: email,
    user_full_name: ENV.fetch('CW_ADMIN_NAME'),
    user_password: ENV.fetch('CW_ADMIN_PASSWORD'),
    confirmed: true,
    super_admin: true
  ).perform
end
account = user.accounts.order(:id).first
token = (user.access_token || user.create_access_token).token
puts({ account_id: account.id, user_id: user.id, access_token: token }.to_json)
