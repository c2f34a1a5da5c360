#pragma once
// The option table (the CLI::App that parse_command_line() builds) rendered for readers other than
// --help: the man page's OPTIONS section and the bash and zsh completion scripts. The build makes them
// with the hidden `imgdl --generate-doc KIND` (app/CMakeLists.txt), so they list exactly the options
// --help lists. Nothing here parses or downloads. Every function is pure: safe from any thread.

#include <string>
#include <string_view>
#include <vector>

namespace CLI {
class App;
}

namespace imgdl::app {

/// What the hidden --generate-doc option prints: the roff of the man page's OPTIONS section (the rest
/// of the page is app/imgdl.1.in), or a bash or zsh completion script.
inline constexpr std::string_view doc_kind_man = "man-options";
inline constexpr std::string_view doc_kind_bash = "bash";
inline constexpr std::string_view doc_kind_zsh = "zsh";

/// A validator whose name starts with this carries the values an option accepts, separated by spaces
/// after it ("choices: overwrite rename resume skip"): cli_options.cpp's one_of() names its validators
/// so, and option_docs() reads them back for the man page and completion.
inline constexpr std::string_view choices_validator_prefix = "choices:";

/// One option as --help shows it.
struct OptionDoc {
  std::vector<std::string> names;    ///< "-i", "--input": short names first, as --help prints them
  std::string value_name;            ///< "FILE", "N", ...; empty for a flag
  std::string description;           ///< --help's text
  std::vector<std::string> choices;  ///< the values it accepts, when they are a fixed set
};

/// A subcommand, `imgdl NAME ...` (imgdl merge), for the completion scripts: offered as imgdl's first
/// word, and then completed with its own options and, as its operands, files.
struct SubcommandDoc {
  std::string name;                ///< "merge"
  std::string description;         ///< a few plain words (no quotes or colons), for zsh's menu
  std::string operand_name;        ///< "REPORT": what its operand files are
  std::vector<OptionDoc> options;  ///< as its --help lists them
};

/// The options --help lists, in its order: neither positionals nor hidden options (group "").
/// Reads the app only, though CLI11 offers its validators through non-const accessors alone.
std::vector<OptionDoc> option_docs(CLI::App& app);

/// The man page's OPTIONS section body: one `.TP` paragraph per option, in roff (man macros).
std::string render_man_options(const std::vector<OptionDoc>& options);

/// A bash completion script defining _imgdl and registering it for `imgdl` (`complete -F`): option
/// names after '-', the fixed values of an option after it (also as --opt=value), files after a FILE
/// option and directories after a DIR one; the subcommands' names as the first word, and after one, its
/// own options the same way and files. Plain bash: needs no bash-completion helpers.
std::string render_bash_completion(const std::vector<OptionDoc>& options,
                                   const std::vector<SubcommandDoc>& subcommands);

/// A zsh completion function (`#compdef imgdl`, for a directory on $fpath) built on _arguments, with
/// the subcommands as the bash script has them.
std::string render_zsh_completion(const std::vector<OptionDoc>& options,
                                  const std::vector<SubcommandDoc>& subcommands);

}  // namespace imgdl::app
