using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Llm;

namespace Microsoft.ML.Cora.Prompting;

/// <summary>Builds prompts from a user's history and a target item; drops the oldest titles first when too long.</summary>
public sealed class PromptBuilder
{
    /// <summary>The template and its words.</summary>
    public PromptOptions Options { get; }
    /// <summary>A builder of these options (the default template when null).</summary>
    public PromptBuilder(PromptOptions? options = null) => Options = options ?? new PromptOptions();

    /// <summary>The prompt text for a history (oldest first) and target title.</summary>
    public string Text(IReadOnlyList<string> historyTitles, string targetTitle)
    {
        var recent = historyTitles.Skip(Math.Max(0, historyTitles.Count - Options.MaxHistory));
        string list = historyTitles.Count == 0 ? Options.EmptyHistory : string.Join(", ", recent.Select(t => $"\"{t}\""));
        return Options.Template
            .Replace("<ItemNounPlural>", Options.ItemNounPlural)
            .Replace("<ItemNoun>", Options.ItemNoun)
            .Replace("<ItemTitleList>", list)
            .Replace("<TargetItemTitle>", $"\"{targetTitle}\"");
    }

    /// <summary>The prompt text of a row: its history's titles (items without one skipped) and its item's title.</summary>
    public string Text(Interaction row, ItemCatalog items) =>
        Text(row.History.Where(items.Contains).Select(items.Title).ToList(), items.Title(row.ItemId));

    private static readonly string[] SlotNames = { "<UserID>", "<TargetItemID>" };

    /// <summary>
    /// Tokenises with BOS first. If the prompt exceeds the budget, the oldest history titles are dropped one at a
    /// time (never the target title); if it still does not fit with no history, an error names the target.
    /// </summary>
    public TokenizedPrompt Tokenize(IReadOnlyList<string> historyTitles, string targetTitle, ITextTokenizer tokenizer, int contextLength, int placeholderId = 0)
    {
        int budget = Options.MaxTokens > 0 ? Math.Min(Options.MaxTokens, contextLength) : contextLength;
        var titles = historyTitles.Skip(Math.Max(0, historyTitles.Count - Options.MaxHistory)).ToList();
        while (true)
        {
            var p = TokenizeText(Text(titles, targetTitle), tokenizer, placeholderId);
            if (p.Ids.Length <= budget) return p with { TitlesUsed = titles.Count };
            if (titles.Count == 0)
                throw new InvalidOperationException($"The prompt for target \"{IO.ErrorText.Elide(targetTitle)}\" needs {p.Ids.Length} tokens with no history, more than the budget of {budget}: shorten the template or raise PromptOptions.MaxTokens / use an LLM with a longer context.");
            titles.RemoveAt(0);                       // drop the oldest title first
        }
    }

    /// <summary>Tokenises ready prompt text (BOS first; &lt;UserID&gt;/&lt;TargetItemID&gt; become soft-token slots).</summary>
    public static TokenizedPrompt TokenizeText(string text, ITextTokenizer tokenizer, int placeholderId = 0)
    {
        var ids = new List<int> { tokenizer.BosId };
        var slots = new List<(int, string)>();
        int at = 0;
        while (at < text.Length)
        {
            int next = -1; string? slot = null;
            foreach (var s in SlotNames)
            {
                int i = text.IndexOf(s, at, StringComparison.Ordinal);
                if (i >= 0 && (next < 0 || i < next)) { next = i; slot = s; }
            }
            string segment = next < 0 ? text[at..] : text[at..next];
            if (segment.Length > 0) ids.AddRange(tokenizer.Encode(segment, addBos: false));
            if (next < 0) break;
            slots.Add((ids.Count, slot!));
            ids.Add(placeholderId);
            at = next + slot!.Length;
        }
        return new TokenizedPrompt(ids.ToArray(), slots.ToArray(), 0);
    }

    /// <summary>The first token of "Yes" (the id whose logit is the score), as CoLLM and CoRA take it.</summary>
    public static int AnswerTokenId(ITextTokenizer tokenizer, string answer = "Yes")
    {
        var ids = tokenizer.Encode(answer, addBos: false);
        if (ids.Count == 0) throw new InvalidOperationException($"The tokenizer {tokenizer.Source} encodes \"{answer}\" to no tokens.");
        return ids[0];
    }
}
