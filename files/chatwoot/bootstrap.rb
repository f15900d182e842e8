# Managed by the platform deploy (application bootstrap). Run by Chatwoot's own
# `bundle exec rails runner`: the first account and its admin without the sign-up page,
# the admin's API token, and n8n's automation agent (an agent, not an administrator) with its
# token. Idempotent: an existing admin or agent (by e-mail) is reused.
# Reads CW_ACCOUNT_NAME, CW_ADMIN_NAME, CW_ADMIN_EMAIL, CW_ADMIN_PASSWORD, CW_AUTOMATION_NAME,
# CW_AUTOMATION_EMAIL; prints one JSON line: {"account_id": .., "user_id": .., "access_token": "..",
# "automation_user_id": .., "automation_token": ".."}.
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
automation = User.find_by(email: ENV.fetch('CW_AUTOMATION_EMAIL')) || User.create!(
  name: ENV.fetch('CW_AUTOMATION_NAME'), email: ENV.fetch('CW_AUTOMATION_EMAIL'),
  # Never used to sign in: the agent acts through its API token only.
  password: "#{SecureRandom.hex(24)}aA1!", confirmed_at: Time.current
)
AccountUser.find_or_create_by!(account: account, user: automation) { |member| member.role = :agent }
automation_token = (automation.access_token || automation.create_access_token).token
puts({ account_id: account.id, user_id: user.id, access_token: token,
       automation_user_id: automation.id, automation_token: automation_token }.to_json)
