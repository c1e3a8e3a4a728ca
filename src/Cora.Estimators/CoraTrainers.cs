using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Cora.Methods;

namespace Microsoft.ML.Cora;

/// <summary>Cora trainers.</summary>
public sealed class CoraTrainers
{
    private readonly MLContext _ml;
    internal CoraTrainers(MLContext ml) => _ml = ml;

    /// <summary>Cora with the settings people change most; everything else from <see cref="CoraDefaults"/>.</summary>
    /// <param name="llmPath">Hugging Face model folder or llama2.c .bin (tokenizer beside it).</param>
    /// <param name="itemTitles">Item catalog: id -> title.</param>
    /// <param name="userIdColumnName">The user id column (a key or integer; for text ids see the overload with text titles).</param>
    /// <param name="itemIdColumnName">The item id column (a key or integer); each id needs a title in <paramref name="itemTitles"/>.</param>
    /// <param name="labelColumnName">The label column (the user liked the item): Boolean, or Single/Double holding 1 and 0.</param>
    /// <param name="historyColumnName">The user's liked items before this row, oldest first: a vector of item ids or text of space-separated ids.</param>
    /// <param name="method">Cora (default), Collm, LlmLora or Mf.</param>
    /// <param name="epochs">Passes over the training rows.</param>
    /// <param name="generator">The query generator's size: null = <see cref="Methods.QueryGeneratorOptions.Paper"/> (CoRA's, 8 x 512,
    /// about 1.1 GB to train on a CPU); <see cref="Methods.QueryGeneratorOptions.Compact"/> trains several times faster in a third
    /// of the memory.</param>
    /// <param name="device">cpu (default), cuda, cuda:N or auto.</param>
    public CoraTrainer Cora(string llmPath, IDictionary<int, string> itemTitles,
        string userIdColumnName = CoraTrainer.Defaults.UserIdColumnName, string itemIdColumnName = CoraTrainer.Defaults.ItemIdColumnName,
        string labelColumnName = CoraTrainer.Defaults.LabelColumnName, string historyColumnName = CoraTrainer.Defaults.HistoryColumnName,
        CoraMethod method = CoraTrainer.Defaults.Method, int epochs = CoraTrainer.Defaults.Epochs,
        Methods.QueryGeneratorOptions? generator = null, string device = CoraDefaults.Device)
    {
        var o = new CoraTrainer.Options
        {
            LlmPath = llmPath, ItemTitles = itemTitles, UserIdColumnName = userIdColumnName, ItemIdColumnName = itemIdColumnName,
            LabelColumnName = labelColumnName, HistoryColumnName = historyColumnName, Device = device,
        };
        o.Method = method; o.Epochs = epochs;
        if (generator is not null) o.Generator = generator;
        return Cora(o);
    }

    /// <summary>Cora for ids given as text ("alice", "tt0111161"): the same as the overload above, with the item catalog keyed by
    /// text id. The user and item id columns are text (or keys of text); the fitted model numbers them and saves the list.</summary>
    /// <param name="llmPath">Hugging Face model folder or llama2.c .bin (tokenizer beside it).</param>
    /// <param name="itemTitles">Item catalog: text id -> title.</param>
    /// <param name="userIdColumnName">The user id column (text).</param>
    /// <param name="itemIdColumnName">The item id column (text); each id needs a title in <paramref name="itemTitles"/>.</param>
    /// <param name="labelColumnName">The label column (the user liked the item): Boolean, or Single/Double holding 1 and 0.</param>
    /// <param name="generator">The query generator's size (see the overload above).</param>
    /// <param name="device">cpu (default), cuda, cuda:N or auto.</param>
    public CoraTrainer Cora(string llmPath, IDictionary<string, string> itemTitles,
        string userIdColumnName = CoraTrainer.Defaults.UserIdColumnName, string itemIdColumnName = CoraTrainer.Defaults.ItemIdColumnName,
        string labelColumnName = CoraTrainer.Defaults.LabelColumnName, Methods.QueryGeneratorOptions? generator = null, string device = CoraDefaults.Device)
    {
        var o = new CoraTrainer.Options
        {
            LlmPath = llmPath, ItemTitlesByTextId = itemTitles, UserIdColumnName = userIdColumnName, ItemIdColumnName = itemIdColumnName,
            LabelColumnName = labelColumnName, Device = device,
        };
        if (generator is not null) o.Generator = generator;
        return Cora(o);
    }

    /// <summary>Cora with full options.</summary>
    public CoraTrainer Cora(CoraTrainer.Options options) => new(_ml, options);
}
