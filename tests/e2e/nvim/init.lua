-- A user's Neovim config for codellama-lsp (the README's), driven headless by
-- tests/e2e/test_client_neovim.py: open a file, enter insert mode, wait for the server's
-- suggestion, accept it, and write what happened to $CODELLAMA_NVIM_RESULT.
local env = vim.env
local mode = env.CODELLAMA_NVIM_MODE -- "inline" (0.12) or "completion" (0.11 fallback)
local result = { statuses = {}, mode = mode }
local ready = false

local function finish(err)
  result.error = err
  result.line = vim.api.nvim_buf_get_lines(0, 1, 2, false)[1]
  local f = assert(io.open(env.CODELLAMA_NVIM_RESULT, "w"))
  f:write(vim.json.encode(result))
  f:close()
  vim.cmd("qa!")
end

vim.lsp.config("codellama", {
  cmd = { env.CODELLAMA_PYTHON, "-m", "codellama_lsp.server", "--stdio", "--log-file", env.CODELLAMA_LOG },
  filetypes = { "python" },
  root_markers = { ".git" },
  init_options = {
    model = { path = env.CODELLAMA_MODEL, nCtx = 4096 },
    completion = { candidates = tonumber(env.CODELLAMA_NVIM_CANDIDATES or "1") },
  },
  handlers = {
    ["codellama/status"] = function(_, params)
      table.insert(result.statuses, params.state)
      ready = ready or params.state == "ready"
    end,
  },
})
vim.lsp.enable("codellama")

-- Tell the server where you are after a file switch or a pause, so it evaluates
-- that prompt while you are idle and the first keystroke there is answered warm.
vim.api.nvim_create_autocmd({ "LspAttach", "BufEnter", "CursorHold" }, {
  callback = function(args)
    for _, client in ipairs(vim.lsp.get_clients({ bufnr = args.buf, name = "codellama" })) do
      local row, col = unpack(vim.api.nvim_win_get_cursor(0))
      client:notify("codellama/documentActive", {
        textDocument = { uri = vim.uri_from_bufnr(args.buf) },
        position = { line = row - 1, character = col }, -- bytes: the negotiated utf-8
      })
    end
  end,
})
if mode == "inline" then
  vim.lsp.inline_completion.enable()
  -- completion.candidates > 1: cycle through them.
  vim.keymap.set("i", "<M-]>", function() vim.lsp.inline_completion.select({ count = 1 }) end)
  vim.keymap.set("i", "<M-[>", function() vim.lsp.inline_completion.select({ count = -1 }) end)
end

-- Fail instead of hanging if nothing happens.
vim.defer_fn(function()
  finish("timed out")
end, 40000)

local ns = vim.api.nvim_create_namespace("nvim.lsp.inline_completion")

local function ghost_text()
  for _, mark in ipairs(vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })) do
    local details = mark[4]
    local chunks = details.virt_text or (details.virt_lines and details.virt_lines[1]) or {}
    local text = ""
    for _, chunk in ipairs(chunks) do
      text = text .. chunk[1]
    end
    if text ~= "" then
      return text
    end
  end
end

local function poll(check, done)
  local timer = assert(vim.uv.new_timer())
  timer:start(50, 50, vim.schedule_wrap(function()
    local value = check()
    if value and not timer:is_closing() then
      timer:stop()
      timer:close()
      done(value)
    end
  end))
end

local function type_and_accept()
  vim.api.nvim_win_set_cursor(0, { 2, 4 })
  vim.api.nvim_feedkeys(vim.keycode("A"), "n", false)
  if mode == "inline" then
    local function accept(text)
      result.ghost = text
      result.mode_when_shown = vim.api.nvim_get_mode().mode
      -- Accept, as a key mapping would: Neovim inserts the item, then executes its
      -- command (workspace/executeCommand), which the server counts as an accept.
      vim.lsp.inline_completion.get()
      vim.schedule(function()
        -- Asked after the command, so answered after the server counted it.
        local client = vim.lsp.get_clients({ bufnr = 0, name = "codellama" })[1]
        client:request("codellama/stats", vim.empty_dict(), function(err, stats)
          result.stats = err and { error = err.message } or stats
          finish(nil)
        end, 0)
      end)
    end
    poll(ghost_text, function(text)
      if not env.CODELLAMA_NVIM_CANDIDATES then
        return accept(text)
      end
      -- Several candidates: the mapping shows the next one, and that one is accepted.
      result.first_ghost = text
      vim.api.nvim_feedkeys(vim.keycode("<M-]>"), "m", false)
      poll(function()
        local now = ghost_text()
        return now ~= nil and now ~= text and now
      end, accept)
    end)
  else
    -- Neovim 0.11: the same suggestion through textDocument/completion, with the
    -- built-in LSP completion (which applies the item's textEdit on accept).
    vim.opt.completeopt = { "menu", "menuone", "noselect" }
    local client = vim.lsp.get_clients({ bufnr = 0, name = "codellama" })[1]
    vim.lsp.completion.enable(true, client.id, 0)
    vim.schedule(function()
      vim.lsp.completion.get()
    end)
    poll(function()
      local info = vim.fn.complete_info({ "items" })
      return #info.items > 0 and info.items
    end, function(items)
      result.items = vim.tbl_map(function(item)
        return item.word
      end, items)
      vim.api.nvim_feedkeys(vim.keycode("<C-n><C-y>"), "n", false)
      -- Accepting inserts the item's word, then CompleteDone expands its edit whole.
      poll(function()
        local line = vim.api.nvim_buf_get_lines(0, 1, 2, false)[1]
        return vim.fn.pumvisible() == 0 and line:find("pass", 1, true) and line
      end, function()
        vim.defer_fn(function()
          finish(nil)
        end, 200)
      end)
    end)
  end
end

-- As a user would: Neovim has started (filetype detection on), then the file opens.
vim.api.nvim_create_autocmd("VimEnter", {
  once = true,
  nested = true, -- so that :edit fires FileType (and the LSP attaches)
  callback = function()
    vim.cmd.edit(env.CODELLAMA_FILE)
    poll(function()
      return ready and #vim.lsp.get_clients({ bufnr = 0, name = "codellama" }) > 0
    end, type_and_accept)
  end,
})
