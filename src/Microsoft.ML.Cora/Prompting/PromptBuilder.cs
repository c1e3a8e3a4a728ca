using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Llm;

namespace Microsoft.ML.Cora.Prompting;

/// <summary>Prompt options. The defaults reproduce CoLLM/TALLRec's MovieLens template literally.</summary>
public sealed record PromptOptions
{
    /// <summary>
    /// CoLLM/TALLRec's template. Placeholders: <c>&lt;ItemTitleList&gt;</c>, <c>&lt;TargetItemTitle&gt;</c>,
    /// <c>&lt;ItemNoun&gt;</c>, <c>&lt;ItemNounPlural&gt;</c>; the CoLLM baseline also uses <c>&lt;UserID&gt;</c> and
    /// <c>&lt;TargetItemID&gt;</c> (one soft token each). <c>\n</c> is a literal backslash-n, as in the original.
    /// </summary>
    public const string DefaultTemplate =
        "#Question: A user has given high ratings to the following <ItemNounPlural>: <ItemTitleList>. Leverage the information to predict whether the user would enjoy the <ItemNoun> titled <TargetItemTitle>? Answer with \"Yes\" or \"No\". \\n#Answer:";

    /// <summary>CoLLM's template with soft-token slots for the user and the target item.</summary>
    public const string CollmTemplate =
        "#Question: A user has given high ratings to the following <ItemNounPlural>: <ItemTitleList>. Additionally, we have information about the user's preferences encoded in the feature <UserID>. Using all available information, make a prediction about whether the user would enjoy the <ItemNoun> titled <TargetItemTitle> with the feature <TargetItemID>? Answer with \"Yes\" or \"No\". \\n#Answer:";

    public string Template { get; init; } = DefaultTemplate;
    /// <summary>Domain noun, singular ("movie", "book").</summary>
    public string ItemNoun { get; init; } = "movie";
    /// <summary>Domain noun, plural ("movies", "books").</summary>
    public string ItemNounPlural { get; init; } = "movies";
    /// <summary>How many of the most recent liked items to list (CoLLM uses 10).</summary>
    public int MaxHistory { get; init; } = 10;
    /// <summary>Stand-in for an empty history (CoLLM's spelling).</summary>
    public string EmptyHistory { get; init; } = "unkow";
    /// <summary>Token budget of a prompt (BOS included); 0 = the LLM's context length.</summary>
    public int MaxTokens { get; init; }
}

/// <summary>A tokenised prompt; <see cref="Slots"/> are positions where soft tokens replace the placeholder id.</summary>
public sealed record TokenizedPrompt(int[] Ids, (int position, string slot)[] Slots, int TitlesUsed);

/// <summary>Builds prompts from a user's history and a target item; drops the oldest titles first when too long.</summary>
public sealed class PromptBuilder
{
    public PromptOptions Options { get; }
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
